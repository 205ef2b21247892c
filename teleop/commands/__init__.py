"""The `telesurg` commands by area, each module an ``add_commands(sub)`` and its handlers:
``learning`` (envs, demo, train, eval, sweep), ``stack`` (robot, console, video, launch),
``security`` (keys, protocol), ``network`` (netem), ``verification`` (safety, soak,
train-predictor). ``telesurg.teleop.cli`` builds the parser from them. Docstring only."""
