"""The web application and HTTP API (FastAPI, Jinja2 templates, plain JavaScript).

Sits beside the CLI at the top of the layers: it submits through the producer and reads
the database, and never imports TensorFlow: every classification goes to the workers.
"""
