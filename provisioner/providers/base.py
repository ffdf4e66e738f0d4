"""The one interface every cloud provider implements. Providers translate; they do not decide."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Protocol

from ..model import Action, Change, DesiredConnector, IngressRule, Kind, Network, Observed


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


class ChangeHandlers:
    """Carries out one planned change by calling the provider's handler for it: a part by
    `_{action}_{part kind}` (`_create_security_group`), everything else by the methods below.
    A provider writes the handlers in its cloud's words; what runs, and in what order, is the
    plan's."""

    def _dispatch(self, change: Change) -> None:
        kind, action = change.kind, change.action
        if kind is Kind.PART:
            assert change.part is not None
            getattr(self, f"_{action}_{change.part.kind.replace('-', '_')}")()
        elif kind is Kind.CONNECTOR:
            if action is Action.START:
                self._start()
            elif action is Action.DELETE:
                self._terminate()
            else:
                assert change.connector is not None
                if action is Action.REPLACE:
                    self._terminate()
                self._launch(change.connector)
        elif kind is Kind.FORWARDING:
            self._enable_forwarding()
        elif kind is Kind.CONNECTOR_INGRESS:
            assert change.destination is not None
            self._connector_ingress(action, change.destination)
        elif kind is Kind.APP_ACCESS:
            assert change.rule is not None
            self._app_access(action, change.resource, change.rule)
        elif kind is Kind.ROUTE:
            self._route(change)
        else:  # pragma: no cover - the planner makes no other kind
            raise AssertionError(change)

    def _launch(self, connector: DesiredConnector) -> None:
        raise NotImplementedError

    def _terminate(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def _enable_forwarding(self) -> None:
        """Seed 'Set Source/Dest Check': the connector's interface may forward."""
        raise NotImplementedError

    def _connector_ingress(self, action: Action, cidr: IPv4Network) -> None:
        raise NotImplementedError

    def _app_access(self, action: Action, group: str, rule: IngressRule) -> None:
        raise NotImplementedError

    def _route(self, change: Change) -> None:
        raise NotImplementedError
