"""The one interface every cloud provider implements. Providers translate; they do not decide."""

from __future__ import annotations

from typing import Protocol

from ..model import Change, DesiredConnector, Network, Observed


class NetworkProvider(Protocol):
    """A handle on one managed network in its cloud.

    - `observe()` reads everything the planner needs, in a number of calls that does not
      grow with the number of route tables; raises `SpecError` when the network named in
      the spec does not exist, `CloudError` when the cloud cannot be read.
    - `apply(change)` carries out one planned change and is safe to repeat: a change that
      is already in effect (left by an interrupted run) succeeds without a second copy.
      Raises `CloudError` with the cloud's own message. Changes of one `planner.stages` step
      are applied from several threads at once: they must not share mutable state.
    """

    network: Network
    # how many changes may be in flight at once within one `throttle_scope`: the calls that
    # share one of the cloud's rate limits (AWS: an account's region)
    concurrency: int
    throttle_scope: str

    def observe(self) -> Observed: ...

    def apply(self, change: Change) -> None: ...

    def user_data(self, connector: DesiredConnector) -> str:
        """The connector's bootstrap as this cloud's user-data; names the secret, never holds it."""
        ...
