"""One controller opening a history store the moment it is told to (the creation race
test starts two on one new store).

    python store_opener.py <url> <ready file> <go file>

Everything is imported and loaded before it writes <ready file>; then it waits
(bounded) for <go file>, opens the store (creating it if new) and lists it.
"""
import os
import sys
import time

from fab.history import migrate
from fab.history.store import open_url


def main(url, ready, go):
    migrate.head()  # the migration scripts loaded before the start
    with open(ready, "w"):
        pass
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("gave up waiting for the start")
        time.sleep(0.001)
    store = open_url(url, "histtest")
    store.operations("histtest", 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
