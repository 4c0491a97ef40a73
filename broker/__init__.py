"""The queue contract: the Celery configuration and the messages producer and worker share."""
