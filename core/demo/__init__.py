"""The demo store: a team, people in every role, three real models and their history."""

from core.demo.people import DEMO_PEOPLE, DEMO_TEAM, DemoPerson
from core.demo.seed import is_empty, seed

__all__ = ["DEMO_PEOPLE", "DEMO_TEAM", "DemoPerson", "is_empty", "seed"]
