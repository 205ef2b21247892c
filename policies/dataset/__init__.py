"""Demonstration datasets in the LeRobot dataset format (v3.0): episodes from the robot's recordings
and the scripted experts, written, read back and checked (``telesurg dataset build/info/validate``)."""
