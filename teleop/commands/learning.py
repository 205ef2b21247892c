"""`telesurg` commands for learning: environments, the demo, training, evaluation and sweeps."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p_envs = sub.add_parser("envs", help="list registered environment ids")
    p_envs.add_argument("--layout", metavar="ID", help="print the observation layout of one id")
    p_envs.set_defaults(func=_cmd_envs)

    p_demo = sub.add_parser("demo", help="headless demo: scripted experts solve every task")
    p_demo.add_argument("--out", default="demo_out", help="folder for the PNGs (default: demo_out)")
    p_demo.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    p_demo.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (default: all)")
    p_demo.add_argument("--width", type=int, default=640, help="image width in pixels (default: 640)")
    p_demo.add_argument("--height", type=int, default=480, help="image height in pixels (default: 480)")
    p_demo.set_defaults(func=_cmd_demo)

    p_train = sub.add_parser("train", help="train PPO (Box ids) or DQN (Discrete ids) headless")
    p_train.add_argument("config", nargs="?", help="TOML file, e.g. launch/train/reach_ppo.toml")
    p_train.add_argument("--env", help="env id (overrides env_id)")
    p_train.add_argument("--algo", choices=["ppo", "dqn", "auto"], help="algorithm (default: by action space)")
    p_train.add_argument("--timesteps", type=int, help="total environment steps")
    p_train.add_argument("--n-envs", type=int, help="parallel envs (subprocesses where it pays)")
    p_train.add_argument("--seed", type=int, help="random seed")
    p_train.add_argument("--out", help="run folder (default: runs/<task>_<algo>_s<seed>)")
    p_train.add_argument(
        "--shield", action=argparse.BooleanOptionalAction, default=None, help="force shield in training"
    )
    p_train.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. hyperparams.gamma=0.98"
    )
    p_train.add_argument("--resume", metavar="RUN", help="continue a run folder (or one of its checkpoints)")
    p_train.add_argument("--init", metavar="PRETRAINED", help="fine-tune a policy from `telesurg pretrain`")
    p_train.add_argument(
        "--critic-warmup", type=int, metavar="STEPS", help="with --init (PPO): actor frozen while the critic learns"
    )
    p_train.set_defaults(func=_cmd_train)

    p_pre = sub.add_parser("pretrain", help="behaviour cloning: pretrain a policy on a demonstration dataset")
    p_pre.add_argument("config", help="the training TOML the policy will be fine-tuned with (env, algorithm, network)")
    p_pre.add_argument("--dataset", required=True, help="dataset folder from `telesurg dataset build`")
    p_pre.add_argument("--out", required=True, help="policy folder to write (a bundle `telesurg eval` runs)")
    p_pre.add_argument("--epochs", type=int, default=100, help="passes over the training split (default: 100)")
    p_pre.add_argument("--batch-size", type=int, default=256, help="minibatch size (default: 256)")
    p_pre.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    p_pre.add_argument("--log-std", type=float, help="PPO: log std of the cloned policy (default: ln 0.2)")
    p_pre.add_argument(
        "--augment-shift",
        type=float,
        default=0.0,
        metavar="M",
        help="shift all positions of a frame together by up to ±M metres (translation augmentation; Reach)",
    )
    p_pre.add_argument(
        "--shuffle-fields",
        nargs="+",
        default=[],
        metavar="FIELD",
        help="observation fields whose values come from random other frames, so the clone cannot copy the "
        "demonstrator's momentum (recorded demonstrations: tip_vel_m_s jaw_opening)",
    )
    p_pre.add_argument("--include-flagged", action="store_true", help="also clone episodes over the hard limit")
    p_pre.add_argument("--set", action="append", metavar="KEY=VALUE", help="training config override")
    p_pre.set_defaults(func=_cmd_pretrain)

    p_eval = sub.add_parser("eval", help="evaluate a saved policy: success, violations, contact force")
    p_eval.add_argument("model", help="policy folder (or its model.zip), e.g. assets/policies/reach_ppo")
    p_eval.add_argument("--env", help="env id (default: the one in the model card)")
    p_eval.add_argument("--episodes", type=int, default=20, help="episodes per shield setting (default: 20)")
    p_eval.add_argument("--seed", type=int, default=1_000_000, help="seed of the first episode (default: 1000000)")
    p_eval.add_argument("--shield", choices=["both", "off", "on"], default="both", help="force shield (default: both)")
    p_eval.add_argument("--video", metavar="OUT.mp4", help="record the first episode from the endoscope camera")
    p_eval.add_argument("--plot", metavar="OUT.png", help="plot the training curve (success rate over steps)")
    p_eval.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    p_eval.set_defaults(func=_cmd_eval)

    p_sweep = sub.add_parser("sweep", help="hyperparameter sweep on Ray Tune (local or on a Ray cluster)")
    p_sweep.add_argument("config", help="sweep TOML, e.g. launch/sweep/reach_ppo.toml")
    p_sweep.add_argument("--trials", type=int, help="number of trials (overrides the file)")
    p_sweep.add_argument("--out", help="sweep folder (overrides the file)")
    p_sweep.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p_sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override applied to every trial")
    p_sweep.set_defaults(func=_cmd_sweep)


def _cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from telesurg import envs

    if args.layout:
        if args.layout not in envs.ENV_IDS:
            raise CliError(f"unknown env id {args.layout!r}; run 'telesurg envs' for the list")
        env = gym.make(args.layout)
        try:
            base = env.unwrapped
            print(f"{args.layout}: observation layout {base.obs_layout.signature()}")
            for name, layout in (("observation", base.obs_layout), ("achieved_goal / desired_goal", base.goal_layout)):
                print(f"\n{name} ({layout.size} values)")
                for row in layout.describe():
                    span = f"[{row['start']:>2}:{row['start'] + row['size']:<2}]"
                    print(f"  {span} {row['name']:<18} {row['unit']:<5} {row['doc']}")
            labels = getattr(env, "labels", None)
            if labels is None and hasattr(env, "get_wrapper_attr"):
                try:
                    labels = env.get_wrapper_attr("labels")
                except AttributeError:
                    labels = None
            if labels:
                print("\ndiscrete actions: " + ", ".join(f"{i}={label}" for i, label in enumerate(labels)))
        finally:
            env.close()
        return 0
    print(f"{'id':<36}{'actions':>10}{'reward':>8}{'max steps':>11}")
    for env_id in envs.ENV_IDS:
        spec = gym.spec(env_id)
        kind = "discrete" if spec.kwargs.get("discrete") else "box(4)"
        print(f"{env_id:<36}{kind:>10}{spec.kwargs['reward_type']:>8}{spec.max_episode_steps:>11}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from telesurg.envs.demo import format_table, run_demo
    from telesurg.envs.tasks import TASKS_BY_NAME

    unknown = [t for t in args.tasks or [] if t not in TASKS_BY_NAME]
    if unknown:
        raise CliError(f"unknown task(s) {unknown}; choose from {sorted(TASKS_BY_NAME)}")
    if args.width < 8 or args.height < 8:
        raise CliError("--width and --height must be at least 8 pixels")
    out = Path(args.out)
    print(f"telesurg demo: scripted experts, one episode per task, images in {out.resolve()}", flush=True)
    rows = run_demo(
        out, seed=args.seed, width=args.width, height=args.height, tasks=args.tasks, log=lambda m: print(m, flush=True)
    )
    print()
    print(format_table(rows))
    print(f"\nimages written to {out.resolve()}")
    ok = all(r.success for r in rows)
    if not args.tasks:
        ok = _demo_policies(args.seed) and ok
    return 0 if ok else 1


def _demo_policies(seed: int) -> bool:
    """One episode of every shipped trained policy (with the shield where it was trained with one)."""
    from telesurg.policies.bundle import Policy
    from telesurg.policies.evaluate import evaluate
    from telesurg.policies.shipped import shipped_policies

    print("\ntrained policies (assets/policies), one episode each:")
    print(f"{'policy':<14}{'env id':<34}{'success':>8}{'max force N':>13}")
    ok = True
    for name, folder in shipped_policies().items():
        policy = Policy.load(folder)
        card = policy.card
        shield = bool(card.training.get("shield", False))
        result = evaluate(policy, card.env_id, 1, seed=seed, shield=shield, env_options=card.env_options)
        ok &= result.success_rate == 1.0
        print(
            f"{name:<14}{card.env_id:<34}{'yes' if result.success_rate == 1.0 else 'no':>8}"
            f"{result.max_contact_force_N:>13.2f}"
        )
    return ok


def _train_overrides(args: argparse.Namespace) -> list[str]:
    from telesurg.policies.config import toml_value

    overrides = []
    for flag, key, is_str in (
        ("env", "env_id", True),
        ("algo", "algo", True),
        ("timesteps", "total_timesteps", False),
        ("n_envs", "n_envs", False),
        ("seed", "seed", False),
        ("out", "out", True),
        ("init", "init", True),
        ("critic_warmup", "critic_warmup_steps", False),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={toml_value(value) if is_str else value}")
    if args.shield is not None:
        overrides.append(f"shield={'true' if args.shield else 'false'}")
    return overrides + list(args.set or [])


def _cmd_train(args: argparse.Namespace) -> int:
    from telesurg.policies.config import ConfigError, load_config
    from telesurg.policies.train import resume, train

    try:
        if args.resume:
            if args.config:
                raise CliError("give either a config file or --resume RUN, not both")
            if args.env or args.algo:
                raise CliError("--env and --algo cannot change when resuming a run")
            cfg, bundle = resume(args.resume, _train_overrides(args))
        else:
            cfg, bundle = load_config(args.config, _train_overrides(args)), None
        train(cfg, command=args.command_line, log=lambda m: print(m, flush=True), resume_from=bundle)
    except (ConfigError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # e.g. --out names a file or an unwritable place
        raise CliError(f"cannot write the run folder: {exc}") from None
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    import dataclasses

    from telesurg.policies.config import ConfigError, load_config
    from telesurg.policies.dataset.lerobot import DatasetError
    from telesurg.policies.pretrain import PretrainSettings, pretrain

    settings = PretrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        include_flagged=args.include_flagged,
        augment_shift_m=args.augment_shift,
        shuffle_fields=tuple(args.shuffle_fields),
    )
    if args.log_std is not None:
        settings = dataclasses.replace(settings, log_std=args.log_std)
    if Path(args.out).exists():
        raise CliError(f"{args.out} exists; choose another --out")
    try:
        cfg = load_config(args.config, list(args.set or []))
        pretrain(cfg, args.dataset, args.out, settings, command=args.command_line, log=lambda m: print(m, flush=True))
    except (ConfigError, DatasetError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from telesurg.policies.evaluate import EvalSetupError, evaluate_saved, format_results, load_saved

    if args.episodes < 1:
        raise CliError("--episodes must be at least 1")
    for flag, target in (("--video", args.video), ("--plot", args.plot), ("--json", args.json)):
        if target and not Path(target).resolve().parent.is_dir():
            raise CliError(f"{flag} {target}: folder {Path(target).resolve().parent} does not exist")
    try:
        saved = load_saved(args.model, args.env)
    except EvalSetupError as exc:
        raise CliError(str(exc)) from None
    if args.plot:
        from telesurg.policies.plot import plot_training_curve

        try:
            print(f"training curve written to {plot_training_curve(args.model, args.plot)}")
        except ValueError as exc:
            raise CliError(str(exc)) from None
    shields = {"off": (False,), "on": (True,), "both": (False, True)}[args.shield]
    try:
        results = evaluate_saved(saved, args.episodes, args.seed, shields, args.video)
    except EvalSetupError as exc:
        raise CliError(str(exc)) from None
    print(format_results(results))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
        except OSError as exc:
            raise CliError(f"cannot write {args.json}: {exc}") from None
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from telesurg.policies.config import ConfigError
    from telesurg.policies.sweep import load_sweep, run_sweep

    if importlib.util.find_spec("ray") is None:
        raise CliError("the sweep needs Ray Tune; install the extra with: pip install 'telesurg[distributed]'")
    try:
        spec = load_sweep(args.config, trials=args.trials, out=args.out, overrides=args.set)
        run_sweep(spec, address=args.address, log=lambda m: print(m, flush=True))
    except (ConfigError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return 0
