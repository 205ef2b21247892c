"""The surgical tasks. A new task is a small ``Task`` subclass added to ``TASKS``."""

from telesurg.envs.tasks.base import StepResult, Task
from telesurg.envs.tasks.palpate import Palpate
from telesurg.envs.tasks.reach import Reach
from telesurg.envs.tasks.retract import Retract
from telesurg.envs.tasks.trace import Trace
from telesurg.envs.tasks.transfer import Transfer

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
