"""The surgeon console: the core (``core``: handshake, the robot connection, ``tick``, episodes),
input devices, the scripted surgeon and trace replay (``inputs``), clutch and hand–eye mapping
(``mapping``).

Docstring only, no re-exports."""
