"""Finding hands in photos: MediaPipe's palm detector and hand-landmark models.

:mod:`.models` says which files are served and fetches them from the pinned wheel,
:mod:`.palm` finds palms, :mod:`.landmarks` places 21 points on each, :mod:`.finder`
runs both on a photo, and :mod:`.features` turns the points into what the classifier
reads. The models run in LiteRT (:mod:`.runtime`); nothing here imports TensorFlow.
"""
