"""A stock kazoo contender for the mixed-fleet tests (tests/tests/zk_mixed_fleet.rs): kazoo's
Election on one path. Run with Debian's python3 (/usr/bin/python3) and python3-kazoo.

Usage: kazoo_peer.py CONNECT PATH ID SESSION_MS
Says on stdout, one line each: "NODE <name>" once its node exists, "LEADER" when it leads,
"NOT_LEADER" when it stops leading, "CLOSED" when closed. Reads "CLOSE" on stdin (or EOF):
gives up (returns from the leader function, or cancels the election) and exits.
"""
import sys
import threading
import time

from kazoo.client import KazooClient


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    connect, path, ident, session_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = KazooClient(hosts=connect, timeout=session_ms / 1000.0)
    client.start(timeout=10)
    election = client.Election(path, ident)
    close = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "CLOSE":
                break
        close.set()
        # Not leading yet: leave the queue (run() then returns).
        election.cancel()

    def lead():
        say("LEADER")
        close.wait()
        say("NOT_LEADER")

    def report_node():
        while not close.is_set():
            node = election.lock.node
            if node is not None:
                say("NODE " + node)
                return
            time.sleep(0.01)

    threading.Thread(target=read_stdin, daemon=True).start()
    threading.Thread(target=report_node, daemon=True).start()
    try:
        election.run(lead)
    except Exception as e:  # a cancelled election raises CancelledError in some versions
        if not close.is_set():
            say("ERROR %r" % (e,))
    client.stop()
    client.close()
    say("CLOSED")


if __name__ == "__main__":
    main()
