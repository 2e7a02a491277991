"""Errors raised by the agent package; each also inherits the fitting built-in."""

from __future__ import annotations


class AgentError(Exception):
    """Base class of the agent's errors."""


class ConfigError(AgentError, ValueError):
    """A configuration field has a value the agent cannot use."""


class EnvironmentSpecError(AgentError, ValueError):
    """The environment's spaces are not ones the hybrid DQN can act in."""


class CheckpointError(AgentError, ValueError):
    """A checkpoint file is missing, foreign or inconsistent with the run."""


class TransitionError(AgentError, ValueError):
    """A transition given to ``Agent.step`` does not match the environment's spaces."""
