"""The surgical tasks. A new task is a small ``Task`` subclass added to ``TASKS``."""

from envs.tasks.base import StepResult, Task
from envs.tasks.palpate import Palpate
from envs.tasks.reach import Reach
from envs.tasks.retract import Retract
from envs.tasks.trace import Trace
from envs.tasks.transfer import Transfer

TASKS: tuple[type[Task], ...] = (Reach, Palpate, Retract, Transfer, Trace)
TASKS_BY_NAME: dict[str, type[Task]] = {t.name: t for t in TASKS}

__all__ = [
    "TASKS",
    "TASKS_BY_NAME",
    "Palpate",
    "Reach",
    "Retract",
    "StepResult",
    "Task",
    "Trace",
    "Transfer",
]
