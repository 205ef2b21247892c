"""Teleoperation: protocol, links, robot server, safety supervisor, video, console, and the ``telesurg`` CLI."""
