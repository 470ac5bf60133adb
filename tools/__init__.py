"""Build tooling of the book: the browser check of the built site and the notebook export."""
