"""The surgeon console: the core (``core``: handshake, the robot connection, ``tick``, episodes),
input devices (``inputs``), the scripted surgeon and trace replay (``scripted``), clutch and
hand–eye mapping (``mapping``); front ends: the terminal (``terminal``) and scripted episodes
(``episodes``).

Docstring only, no re-exports."""
