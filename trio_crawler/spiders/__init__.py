"""Built-in spiders. Importing this package registers them."""
