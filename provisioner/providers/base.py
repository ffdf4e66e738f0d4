"""The one interface every cloud provider implements, and the behaviour all of them share.
Providers translate; they do not decide."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from ipaddress import IPv4Network
from typing import Any, ClassVar, Protocol, TypeVar

from ..discover import Found
from ..errors import CloudError
from ..lease import LeaseStore
from ..model import (
    PROFILE_PART,
    VPN_SERVICE,
    Action,
    Change,
    DesiredConnector,
    IngressRule,
    Kind,
    Location,
    Network,
    Observed,
    ObservedConnector,
    ServiceProfile,
    Stray,
)

DEFAULT_CONCURRENCY = 8  # calls at once to one cloud, when neither the user nor the provider says
Progress = Callable[[str], None]
T = TypeVar("T")
_SANDBOX_CLIENTS: dict[Hashable, Any] = {}
_SANDBOX_LOCK = threading.Lock()


def sandbox_clients(endpoint: str | None, key: Hashable, make: Callable[[], T]) -> T:
    """One network's SDK clients. Against a sandbox's fake (`endpoint`, no credential of the
    caller's) they are made once per process and `key`: they hold no secret and reach nothing
    else, and making them is most of what a command costs there (a Google client wraps each of
    its methods and opens a session of its own: ten of them per network). Against a real cloud
    they are made anew each time, so a changed credential is always the one used."""
    if not endpoint:
        return make()
    with _SANDBOX_LOCK:
        if (endpoint, key) not in _SANDBOX_CLIENTS:
            _SANDBOX_CLIENTS[(endpoint, key)] = make()
        return _SANDBOX_CLIENTS[(endpoint, key)]


class NetworkProvider(Protocol):
    """A handle on one managed network in its cloud.

    - `observe()` reads everything the planner needs, in a number of calls that does not
      grow with the number of route tables; raises `SpecError` when the network named in
      the spec does not exist, `CloudError` when the cloud cannot be read.
    - `batch_key(change)`: changes that touch one container (a route table, a security group,
      a firewall rule) share a key, and the engine hands the changes of one step that share
      one to `apply` together: the provider writes the container once where its API takes
      the whole, and no two writes to one container run at once. None: the change goes alone.
    - `apply(changes)` carries out one change, or the changes of one batch key, and is safe
      to repeat: a change that is already in effect (left by an interrupted run) succeeds
      without a second copy. Raises `CloudError` with the cloud's own message, `PartlyDone`
      when some changes of a batch were made and others not. Batches of one step are
      applied from several threads at once: they must not share mutable state.
    """

    network: Network
    # how many changes may be in flight at once within one `throttle_scope`: the calls that
    # share one of the cloud's rate limits (AWS: an account's region)
    concurrency: int
    throttle_scope: str

    def observe(self) -> Observed: ...

    def batch_key(self, change: Change) -> Hashable | None: ...

    def apply(self, changes: Sequence[Change]) -> None: ...

    def user_data(self, connector: DesiredConnector) -> str:
        """The connector's bootstrap as this cloud's user-data; names the secret, never holds it."""
        ...

    def filters(self, observed: Observed) -> Observed:
        """`observed` with what the doctor and status judge packets by (see Provider)."""
        ...

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours nearby whose network is not in `known` (see Provider)."""
        ...

    def watchdogs(self, observed: Observed) -> Observed:
        """`observed` with each pair member's watchdog's last word (see Provider)."""
        ...

    def discover(self, name: str | None) -> Found:
        """The network at this provider's location as it is (see Provider)."""
        ...

    def lease_store(self) -> LeaseStore | None:
        """Where this network's lease lives (lease.py): one apply or destroy at a time."""
        ...

    def image_problem(self, connector: DesiredConnector) -> str | None:
        """Why a VM of `connector`'s settings could not be launched for want of its image
        (see Provider); None: it can."""
        ...

    def newest_image(self, size: str) -> tuple[str, str] | None:
        """The image a connector of `size` gets when the file pins none, and since when it is
        out: what `status` compares the running one with and `apply --roll` takes (None: this
        cloud does not say yet)."""
        ...

    def error_text(self, e: BaseException) -> str:
        """The cloud's refusal or failure `e`, in one line."""
        ...


class PartlyDone(CloudError):
    """A batch stopped part-way: `made` are its changes that were carried out."""

    def __init__(self, message: str, made: Sequence[Change]) -> None:
        super().__init__(message)
        self.made = tuple(made)


@dataclass(frozen=True)
class PartHandlers:
    """How a provider makes, brings up to date and removes one kind of part. `create` None:
    another change makes it (GCP's connector firewall comes with its first rule)."""

    delete: Callable[[Any], None]
    create: Callable[[Any], None] | None = None
    update: Callable[[Any], None] | None = None


class Provider:
    """What every provider shares: errors wrapped once, changes dispatched to the handlers the
    provider names, batches, and waiting with a deadline and progress.

    A provider names its SDK's exceptions and their text (`sdk_errors`, `error_text`), reads
    in `_observe`, declares its parts' handlers in `PARTS` (checked when the class is made, so a
    misspelt part kind fails at import, not mid-apply), and writes the handlers of the other
    kinds in its cloud's words."""

    PARTS: ClassVar[Mapping[str, PartHandlers]] = {}
    concurrency: int = DEFAULT_CONCURRENCY

    network: Network
    location: Location
    progress: Progress
    wait_seconds: float
    progress_seconds: float
    # between asks whether a new connector is ONLINE on the VPN service: its rate limit's
    # refill (one call per 15 s after the burst, shared by every run on the account), so a
    # long wait does not drain the bucket others need
    service_poll_seconds: float = 15.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for kind, handlers in cls.PARTS.items():
            if not isinstance(handlers, PartHandlers) or not callable(handlers.delete):
                raise TypeError(f"{cls.__name__}.PARTS[{kind!r}] names no delete handler")

    # --- what each provider names -------------------------------------------------------

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        """The SDK's exceptions that mean "the cloud said no / could not be reached"."""
        raise NotImplementedError

    def error_text(self, e: BaseException) -> str:
        return f"{type(e).__name__}: {e}".split("\n")[0]

    def credentials_problem(self, e: BaseException) -> str | None:
        """A line saying the credentials are missing, when `e` means that."""
        return None

    def stale_write(self, e: BaseException) -> bool:
        """`e` refuses a write guarded by an etag another writer has changed (HTTP 412)."""
        return getattr(e, "status_code", getattr(e, "status", None)) == 412

    def _observe(self) -> Observed:
        raise NotImplementedError

    # --- observe and apply, wrapped --------------------------------------------------------

    def filters(self, observed: Observed) -> Observed:
        """`observed` with what only the doctor reads: each subnet's edge layer, the hosts of
        each app group. A cloud that does not read them returns `observed` as it is."""
        return observed

    def discover(self, name: str | None) -> Found:
        """The network at this provider's location as it is (`provision discover`), named
        `name` (None: from the cloud's own name for it)."""
        try:
            return self._discover(name)
        except self.sdk_errors() as e:
            problem = self.credentials_problem(e) or (
                f"could not read {self.location.describe()}: {self.error_text(e)}"
            )
            raise CloudError(f"discover: {problem}; nothing was changed") from None

    def _discover(self, name: str | None) -> Found:
        raise CloudError(f"discover: not built for {self.network.cloud} yet; nothing was read")

    def watchdogs(self, observed: Observed) -> Observed:
        """`observed` with each pair member's watchdog's last word where the cloud keeps it
        (`_watchdog_words`; status only: a read or two more); one it could not read says why."""
        found = observed.connectors
        if len(found) < 2:
            return observed
        try:
            words = self._watchdog_words(found)
        except self.sdk_errors() as e:
            words = {c.instance: f"not read: {self.error_text(e)}" for c in found}
        if not words:
            return observed
        said = {id(c): replace(c, watchdog=words.get(c.instance, c.watchdog)) for c in found}
        connector = observed.connector
        return replace(observed, connectors=tuple(said[id(c)] for c in found),
                       connector=said.get(id(connector), connector))  # fmt: skip

    def _watchdog_words(self, members: tuple[ObservedConnector, ...]) -> dict[str, str]:
        """Each member's watchdog's word by instance, where it is not in what observe read
        already ({}: it is, or the cloud keeps none)."""
        return {}

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours where this network is (its region, resource group, project,
        compartment) whose network is not in `known`. A cloud that does not look returns ()."""
        return ()

    def lease_store(self) -> LeaseStore | None:
        """Where this network's lease lives, kept with the network itself; None: the cloud
        keeps none (two runs at once are then not kept apart)."""
        return None

    def image_problem(self, connector: DesiredConnector) -> str | None:
        """Why a VM of `connector`'s settings could not be launched for want of its image, in
        one line (None: it can): the image the file pins exists (where the cloud's provider
        checks it, `_pinned_image_problem`), or the cloud's default resolves. A read the cloud
        refuses otherwise (a credential without it, an outage) is a CloudError, not bad input."""
        try:
            if connector.image:
                return self._pinned_image_problem(connector.image)
            self._newest_image(connector.size)
            return None
        except self.sdk_errors() as e:
            what = connector.image or "the cloud's default image"
            raise CloudError(
                f"network {self.network.name}: reading {what} in {self.location.describe()}: "
                f"{self.error_text(e)}; nothing was changed"
            ) from None

    def _pinned_image_problem(self, image: str) -> str | None:
        """Why the image the file names cannot be launched (None: it can, or not checked)."""
        return None

    def newest_image(self, size: str) -> tuple[str, str] | None:
        """The image a connector of `size` gets when the file pins none, and since when (the
        cloud's `_newest_image`; its refusal said in one line): None where it does not say."""
        try:
            return self._newest_image(size)
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: the newest image: "
                             f"{self.error_text(e)}") from None  # fmt: skip

    def _newest_image(self, size: str) -> tuple[str, str] | None:
        return None

    def anothers(self, owner: str | None, mine: str | None = None) -> bool:
        """A connector's file marker `owner` names another file than this network's (`mine`:
        the file's id as this cloud writes it): never this file's stray, never pruned."""
        mine = mine if mine is not None else self.network.file
        return bool(owner and mine and owner != mine)

    def observe(self) -> Observed:
        try:
            observed = self._observe()
        except self.sdk_errors() as e:
            problem = self.credentials_problem(e) or (
                f"could not read {self.location.describe()}: {self.error_text(e)}"
            )
            raise CloudError(
                f"network {self.network.name}: {problem}; nothing was changed"
            ) from None
        self.check_parts(observed)
        return observed

    def check_parts(self, observed: Observed) -> None:
        """Every part observe found has the handlers apply and destroy will call: a kind
        without them is this toolkit's bug, said before any change is made."""
        for part in observed.parts:
            handlers = self.PARTS.get(part.kind)
            missing = [
                action
                for action, needed in (
                    ("delete", True),
                    ("create", not part.ready),
                    ("update", part.kind == PROFILE_PART),
                )
                if needed and getattr(handlers, action, None) is None
            ]
            if handlers is None or missing:
                what = "handlers" if handlers is None else " or ".join(missing)
                raise AssertionError(
                    f"{type(self).__name__}: part kind {part.kind!r} has no {what} (PARTS); "
                    "nothing was changed"
                )

    def batch_key(self, change: Change) -> Hashable | None:
        return None

    def apply(self, changes: Sequence[Change]) -> None:
        first = changes[0]
        try:
            if len(changes) == 1 and self.batch_key(first) is None:
                self._dispatch(first)
            else:
                self._apply_batch(changes)
        except self.sdk_errors() as e:
            what = first.summary()
            if len(changes) > 1:
                what += f" (one write with {len(changes) - 1} more change(s), none made)"
            raise CloudError(f"{what}: {self.error_text(e)}") from e

    def _apply_batch(self, changes: Sequence[Change]) -> None:
        """The changes of one batch key: a route table's, or one rule list's (a security group,
        an NSG, a firewall rule), each in as few writes as the cloud's API allows."""
        if changes[0].kind is Kind.ROUTE:
            self._routes_batch(changes)
        else:
            self._rules_batch(changes)

    def _routes_batch(self, changes: Sequence[Change]) -> None:
        raise NotImplementedError

    def _rules_batch(self, changes: Sequence[Change]) -> None:
        raise NotImplementedError

    def _dispatch(self, change: Change) -> None:
        kind, action = change.kind, change.action
        if kind is Kind.PART:
            assert change.part is not None
            handler = getattr(self.PARTS[change.part.kind], str(action))
            assert handler is not None, f"{type(self).__name__}: no {action} for {change.part}"
            handler(self)
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
        elif kind is Kind.READY:
            assert change.previous_target is not None
            if change.target == VPN_SERVICE:
                self._await_online(change)
            else:
                self._await_ready(change.previous_target)
        elif kind is Kind.CONNECTOR_INGRESS:
            assert change.destination is not None
            self._connector_ingress(action, change.destination)
        elif kind is Kind.APP_ACCESS:
            assert change.rule is not None
            self._app_access(action, change.resource, change.rule)
        elif kind is Kind.ROUTE:
            self._route(change)
        elif kind is Kind.FRONT:
            self._front(change)
        elif kind is Kind.RETIRE:
            self._retire(change.resource)
        else:  # pragma: no cover - the planner makes no other kind
            raise AssertionError(change)

    def read_merge_write(
        self,
        what: str,
        read: Callable[[], Any],
        merge: Callable[[Any], Any | None],
        write: Callable[[Any], None],
    ) -> None:
        """A container written back whole (a route table's rules, an NSG's rules): `read` it,
        `merge` ours in (returns what to write, None when it is as wanted already), `write` it
        guarded by the etag it was read at. When another writer came between (412), read again:
        their changes are never lost."""
        for _attempt in range(10):
            merged = merge(read())
            if merged is None:
                return
            try:
                write(merged)
                return
            except self.sdk_errors() as e:
                if not self.stale_write(e):
                    raise
                self.progress(f"{what} changed meanwhile: reading it again")
        raise CloudError(f"{what} kept changing under us (412 ten times)")

    # --- waiting ---------------------------------------------------------------------------

    def wait_until(
        self, what: str, poll: Callable[[], tuple[bool, str]], *, pause: float = 0.0
    ) -> None:
        """Poll until done, saying so while it takes, and give up after `wait_seconds`. `poll` is
        the cloud's own look (a read, or a server-side wait that blocks a while); it returns
        (done, the state it saw). `pause`: seconds between looks that do not block."""
        start = time.monotonic()
        while True:
            done, state = poll()
            if done:
                return
            waited = time.monotonic() - start
            now = f": {state}" if state else ""
            if waited > self.wait_seconds:
                raise CloudError(f"{what} still not done after {waited:.0f}s{now}")
            if waited >= self.progress_seconds:
                self.progress(f"waiting for {what}{now} ({waited:.0f}s)")
            if pause:  # (never far past the deadline)
                time.sleep(max(0.0, min(pause, self.wait_seconds - waited)))

    # --- the handlers each provider writes in its cloud's words ---------------------------

    def _launch(self, connector: DesiredConnector) -> None:
        raise NotImplementedError

    def _terminate(self) -> None:
        raise NotImplementedError

    def _await_ready(self, replacing: str) -> None:
        """Wait until the connector just launched says its tunnel is up (a cloud that makes
        connectors before break reads what the VM sets, with `wait_ready`); the routes still
        lead to `replacing` meanwhile."""

    def wait_ready(
        self,
        instance: str,
        replacing: str,
        look: Callable[[], tuple[bool, str]],
        pause: float,
        saying: str = "to say its tunnel is up",
    ) -> None:
        """`look` until `instance` says its tunnel is up (or what `saying` waits for), with a
        progress line; given up after the provider's wait, saying where the routes still
        lead."""
        try:
            self.wait_until(f"{self.network.name}: {instance} {saying} (the routes stay on "
                            f"{replacing} meanwhile)", look, pause=pause)  # fmt: skip
        except CloudError as e:
            raise CloudError(f"{e}: the routes still lead to {replacing}; run apply again once "
                             "it is up") from None  # fmt: skip

    def _await_online(self, change: Change) -> None:
        """The new VM dials in with a connector of its own on the VPN service: it is ready when
        the service says that connector is ONLINE (asked every `service_poll_seconds`, paced
        by the service's own rate limit)."""
        assert self.network.connector is not None and change.previous_target is not None
        profile = self.network.connector.member_profile(change.member)
        assert isinstance(profile, ServiceProfile) and profile.source is not None
        source, network = profile.source, self.network.name
        name, status = source.connector_status(network, change.member)
        first = [status]

        def look() -> tuple[bool, str]:
            now = first.pop() if first else source.connector_status(network, change.member)[1]
            return now == "ONLINE", now or "no status"

        self.wait_ready(f"the new VM's connector {name}", change.previous_target, look,
                        self.service_poll_seconds, saying="on the VPN service to be ONLINE")  # fmt: skip

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

    def _retire(self, instance: str) -> None:
        """Stop a VM that is not ours (a hand-made connector taken over), and wait until it is
        stopped; never terminate it."""
        raise CloudError(f"stopping {instance}: not built on {self.network.cloud} yet")

    def _front(self, change: Change) -> None:
        """A pair's front (CLOUD_SCHEMAS' ha_front): made on, or moved to, the connector the
        change names (`target`, or the one launched in this apply), or deleted."""
        raise NotImplementedError


class Members:
    """A connector pair (`connector.ha`) on a provider whose handlers act on "the" connector:
    its names and ids are the current member's, switched for the length of a change."""

    # the connector the handlers act on now, and each one's names and ids (the provider's
    # fields of those names are the current member's)
    member: int
    held: dict[int, dict[str, Any]]

    @contextmanager
    def as_member(self, member: int) -> Iterator[None]:
        """For the length of the block, the names and ids the handlers use are those of the
        pair's `member` (0: the first, or the one connector); what they learn is kept."""
        outer = self.member
        for key, value in self.held[member].items():
            setattr(self, key, value)
        try:
            yield
        finally:
            self.held[member] = {k: getattr(self, k) for k in self.held[member]}
            for key, value in self.held[outer].items():
                setattr(self, key, value)

    @contextmanager
    def for_change(self, change: Change) -> Iterator[None]:
        """The member a change is about, for its length; none for the changes a step runs
        side by side (routes, rules), which read the pair's state and never switch it."""
        from ..model import SIDE_BY_SIDE

        if change.kind in SIDE_BY_SIDE:
            yield
            return
        with self.as_member(change.part.member if change.part is not None else change.member):
            yield

    def target_of(self, change: Change, front: str | None, key: str) -> str:
        """What a route change names: the plan's, the pair's front made in this apply
        (`front`), or the connector launched in this apply (its `key` in `held`)."""
        from ..model import NEW_CONNECTOR, NEW_FRONT

        if change.target == NEW_FRONT:
            target = front
        elif change.target == NEW_CONNECTOR:
            target = self.held[change.member][key]
        else:
            target = change.target
        if not target:
            raise CloudError("the connector has no private address yet")
        return str(target)
