"""Files on disk: path containment, which names are images, and reading them safely."""
