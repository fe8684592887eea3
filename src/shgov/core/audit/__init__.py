"""The tamper-evident audit log: append-only records chained by keyed SM3 hashes, written in the
transaction of the change they describe, anchored by signed checkpoints outside the database.

Importing the package installs the session hooks that record every transaction's changes (``capture``).
"""

from shgov.core.audit import capture as capture
