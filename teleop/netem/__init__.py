"""Network emulation: the one link-spec format (``spec``), the seeded link model (``model``) and the
TCP proxy of `telesurg netem` (``proxy``). The console's in-process delay lines and the video path's
datagram emulation use the same model.

May import: ``telesurg.teleop.wire``, ``telesurg.teleop.settings``; not robot, correction or anything above.

Docstring only, no re-exports: spawned children import their package's ``__init__``."""
