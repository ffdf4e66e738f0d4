"""The toolkit's own exceptions. The CLI maps each to an exit code and one line."""

from __future__ import annotations


class ProvisionerError(Exception):
    """Base of every error this toolkit raises on purpose."""

    exit_code = 1


class SpecError(ProvisionerError):
    """Bad input: names the field and the value. Raised before any mutating cloud call."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class ConflictError(ProvisionerError):
    """Routes we need already exist with another target; nothing was changed."""

    exit_code = 3


class LimitError(ConflictError):
    """The plan would fill a route table or a group over the cloud's limit; nothing was
    changed (exit 3, as a conflict)."""


class CloudError(ProvisionerError):
    """A cloud call failed. Says which change failed, what was done before it and what was not."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        done: tuple[str, ...] = (),
        not_done: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.done = done
        self.not_done = not_done
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [self.message]
        if self.done or self.not_done:
            lines.append(f"done ({len(self.done)}):" + ("" if self.done else " nothing"))
            lines += [f"  + {d}" for d in self.done]
            lines.append(
                f"not done ({len(self.not_done)}):" + ("" if self.not_done else " nothing")
            )
            lines += [f"  - {d}" for d in self.not_done]
            lines.append(
                "Run the same command again to finish, or `provision destroy` to clean up."
            )
        return "\n".join(lines)


class Interrupted(CloudError):
    """Ctrl-C during apply or destroy: the changes under way were let finish, no other started."""

    exit_code = 130


class UnsupportedCloudError(SpecError):
    """The topology names a cloud whose provider this version does not have."""
