"""Bridges move call audio between the outside world and the media layer's 20 ms frames."""
