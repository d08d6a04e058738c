"""trio-crawler: a polite, hostile-site-safe web crawler on Trio (API assembled as modules land)."""
