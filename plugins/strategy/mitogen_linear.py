"""Ansible's linear strategy run over Mitogen (the `mitogen` package pinned in
requirements-dev.txt): one persistent Python interpreter per host instead of a
process and a module upload per task. ansible.cfg names it; a controller
without Mitogen runs stock Ansible with `ANSIBLE_STRATEGY=linear`."""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
