"""Video: the scene-mirror renderer process (``renderer``, ``glrender``), its frames in shared memory
(``frames``) and in the media process (``source``), the WebRTC video track (``tracks``), the media
server (``media``), the console's WebRTC client (``client``), ICE settings (``webrtc``) and every
aiortc/aioice internal (``aiortc_patches``), overlays and recording (``overlay``), the web viewer
(``web/``, served within ``httpguard``'s limits).

May import: robot, netem, correction, wire, settings, envs, policies; not the console or the harness.

Docstring only, no re-exports: spawned children (the renderer) import their package's ``__init__``."""
