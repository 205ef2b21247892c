"""The wire, shared by both ends: messages (``protocol``), sockets, CURVE and keys (``channels``,
``auth``), binding (``ports``), the clock sync (``clock``), the fixed-rate loop (``timing``) and the
robot ↔ media signalling (``signalling``). Imports nothing else from teleop.

May import: nothing else of telesurg (``telesurg.teleop.settings`` aside).

Docstring only, no re-exports: spawned children import their package's ``__init__``."""
