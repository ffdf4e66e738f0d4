"""Fakes of the clouds' REST APIs, for `provision demo`, `provision sandbox serve` and the tests.
Each speaks its cloud's dialect over HTTP on 127.0.0.1, so the real SDK talks to it as to the
cloud, and refuses what the cloud refuses. AWS's fake is moto (see `provisioner.sandbox`)."""
