"""The realtime engine: the media layer's client of the Realtime protocol (our workers or any server)."""
