"""Interpretation API, CLI and HTTP server with a web page."""
