"""Video: the scene-mirror renderer process (``renderer``, ``glrender``), shared-memory frames
(``frames``), the media server (``media``), the console's WebRTC client (``client``), ICE address
rules and link emulation (``webrtc``), overlays and recording (``overlay``), the web viewer
(``web/``, served with ``httpguard``'s limits).

Docstring only, no re-exports: spawned children (the renderer) import their package's ``__init__``."""
