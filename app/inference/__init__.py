"""Serving machinery, apart from request handling: models loaded once, dynamic batching,
model-ready inputs kept beside stored images, the one inference pipeline, the task queue."""
