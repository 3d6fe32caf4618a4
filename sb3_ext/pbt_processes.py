"""PBT members in worker processes: a population spread over the cores of this machine.

:class:`MemberHost` is one worker process (``spawn``, so nothing of the parent's state is shared) that holds some
of the population's :class:`~sb3_ext.pbt.PPOMember` models; :class:`ProcessMember` is the engine's handle on one of
them. The engine (:func:`sb3_ext.pbt.population_based_training`) starts every member's interval before it asks
for any score, and a handle's :meth:`~ProcessMember.train` only sends the order, so the hosts train at once while
each host trains its own members one after the other. Copying a member moves a copy of its weights and optimizer
state (``get_parameters``: tensors) from its host to the copier's through this process, over the hosts' pipes,
and the copier copies it again before it takes it: torch sends a tensor through a pipe by moving its storage to
memory the two processes share, and two members must never share an optimizer state. The pipes carry nothing but
what these processes themselves send.

::

    hosts = [MemberHost(threads=1) for _ in range(2)]
    members = [ProcessMember(hosts[i % 2], config, sample(PBT_SPACE, rng)) for i in range(4)]
    try:
        result = population_based_training(members, intervals, 4, PBT_SPACE)
    finally:
        for host in hosts:
            host.close()
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
from collections.abc import Mapping
from typing import Any

from sb3_ext.config import TrainConfig
from sb3_ext.tuning import VALIDATION_SEED

__all__ = ["MemberHost", "MemberProcessError", "ProcessMember"]


class MemberProcessError(RuntimeError):
    """A host process failed an order (the message names the member and the error) or died."""


def _serve(connection: Any, threads: int) -> None:
    """A host's loop: one order at a time, one reply per order, in order."""
    import torch as th

    from sb3_ext.pbt import PPOMember

    th.set_num_threads(threads)
    members: dict[int, PPOMember] = {}
    while True:
        try:
            order, index, *arguments = connection.recv()
        except (EOFError, ConnectionError):  # the parent is gone: nothing left to answer
            return
        if order == "close":
            connection.send(("ok", None))
            return
        try:
            reply: Any = None
            if order == "add":
                config, hyperparams, n_trainees, seed = arguments
                members[index] = PPOMember(config, hyperparams, n_trainees, seed)
            elif order == "train":
                members[index].train(arguments[0])
            elif order == "score":
                reply = members[index].score()
            elif order == "get":  # a copy: sending a tensor moves its storage to memory shared with the receiver
                reply = copy.deepcopy(members[index].model.get_parameters())
            elif order == "set":
                members[index].load_parameters(arguments[0])
            elif order == "hyperparams":
                members[index].set_hyperparams(arguments[0])
            else:
                raise ValueError(f"unknown order {order!r}")
        except Exception as err:  # reported to the parent, which raises it; the host goes on
            reply = ("error", f"member {index}: {order}: {type(err).__name__}: {err}")
        else:
            reply = ("ok", reply)
        try:
            connection.send(reply)
        except (BrokenPipeError, ConnectionError):  # the parent is gone
            return


class MemberHost:
    """One worker process holding population members; its orders run in the order they were sent.

    Args:
        threads: torch threads of the process (the machine's cores over the hosts, for a population on one
            machine).
    """

    def __init__(self, threads: int = 1) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, threads), daemon=True)
        self._process.start()
        child.close()
        self._pending = 0
        self._members = 0

    def send(self, order: str, index: int, *arguments: Any) -> None:
        """Send an order without waiting for it.

        Raises:
            MemberProcessError: The process died.
        """
        try:
            self._connection.send((order, index, *arguments))
        except (BrokenPipeError, ConnectionError):
            raise MemberProcessError(f"the member process exited with {self._process.exitcode}") from None
        self._pending += 1

    def call(self, order: str, index: int, *arguments: Any) -> Any:
        """Send an order and wait for every pending one; the reply of this one.

        Raises:
            MemberProcessError: An order failed, or the process died.
        """
        self.send(order, index, *arguments)
        error, reply = None, None
        while self._pending:
            try:
                status, reply = self._connection.recv()
            except (EOFError, ConnectionError):
                self._pending = 0
                raise MemberProcessError(f"the member process exited with {self._process.exitcode}") from None
            self._pending -= 1
            if status == "error" and error is None:
                error = reply
        if error is not None:
            raise MemberProcessError(error)
        return reply

    def new_index(self) -> int:
        """The index of the next member added to this host."""
        self._members += 1
        return self._members - 1

    def close(self) -> None:
        """Stop the process (waiting for its orders first) and release it."""
        if self._process.is_alive():
            with contextlib.suppress(MemberProcessError):  # it died meanwhile: joined below
                self.call("close", -1)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()


class ProcessMember:
    """A :class:`~sb3_ext.pbt.PPOMember` that lives in ``host``: the engine's :class:`~sb3_ext.pbt.Member`.

    Args:
        host: The process that holds it.
        config: The run, as for :class:`~sb3_ext.pbt.PPOMember`.
        hyperparams: Its initial hyperparameters.
        n_trainees: Validation trainees of its score.
        seed: Seed of the validation trainees.
    """

    def __init__(
        self,
        host: MemberHost,
        config: TrainConfig,
        hyperparams: Mapping[str, float],
        n_trainees: int = 20,
        seed: int = VALIDATION_SEED,
    ) -> None:
        self.host = host
        self.index = host.new_index()
        self.hyperparams = dict(hyperparams)
        host.send("add", self.index, config, self.hyperparams, n_trainees, seed)

    def train(self, units: int) -> None:
        """Order ``units`` more rollouts; returns at once (the next :meth:`score` waits for them)."""
        self.host.send("train", self.index, units)

    def score(self) -> float:
        """The normalized score on the validation trainees, once every order sent before is done."""
        return float(self.host.call("score", self.index))

    def copy_from(self, other: ProcessMember) -> None:
        """Take ``other``'s policy weights and optimizer state (through this process)."""
        self.host.call("set", self.index, other.host.call("get", other.index))

    def set_hyperparams(self, hyperparams: Mapping[str, float]) -> None:
        """Request the hyperparameters: applied at the member's next rollout boundary."""
        self.hyperparams = dict(hyperparams)
        self.host.send("hyperparams", self.index, self.hyperparams)
