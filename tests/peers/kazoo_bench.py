"""kazoo's side of the side-by-side hand-over benchmark (tests/src/bin/zk_compare.rs): C stock
kazoo `Election` contenders on one path, in this one process, each with a KazooClient (a
ZooKeeper session) of its own. Run with Debian's python3 (/usr/bin/python3) and python3-kazoo.

Usage: kazoo_bench.py CONNECT PATH C SESSION_MS

Each contender loops on `election.run(lead)`: the leader function notes when it starts (the
leader's work starts), then waits until it is told to let go and returns, which releases the lock
(deletes its node); the loop then calls `run` again, so it rejoins at the tail.

Says on stdout, one line each:
- "READY" once all C contenders have their node, in order, and the first one leads;
- for each "ROUND" read on stdin: the leader is told to let go (a monotonic clock is read just
  before), the next leader's function starts (read again there), the old leader's new node
  exists; then "ROUND <microseconds>" (the interval between the two readings);
- "ERROR <text>" and exit status 1 when anything fails or takes longer than 30 s;
- "CLOSED" after "QUIT" (or EOF) once every contender has left and every session is closed.
"""
import queue
import sys
import threading
import time

from kazoo.client import KazooClient

LIMIT_S = 30.0


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fail(text):
    say("ERROR " + text)
    sys.stdout.flush()
    # Contender threads may be blocked in kazoo: leave without joining them.
    import os

    os._exit(1)


def wait_until(what, check):
    deadline = time.monotonic() + LIMIT_S
    while not check():
        if time.monotonic() > deadline:
            fail("timed out: " + what)
        time.sleep(0.001)


class Contender:
    def __init__(self, index, connect, path, session_s, led):
        self.index = index
        self.ident = "c%03d" % index
        self.client = KazooClient(hosts=connect, timeout=session_s)
        self.client.start(timeout=LIMIT_S)
        self.election = self.client.Election(path, self.ident)
        self.let_go = threading.Event()
        self.stopping = False
        self.led = led
        self.thread = threading.Thread(target=self.loop, name=self.ident, daemon=True)

    def lead(self):
        # The leader's work starts.
        self.led.put((self.index, time.monotonic_ns()))
        self.let_go.wait()
        self.let_go.clear()

    def loop(self):
        try:
            while not self.stopping:
                self.election.run(self.lead)
        except Exception as e:  # noqa: BLE001 - reported, then the whole probe fails
            if not self.stopping:
                fail("%s: %r" % (self.ident, e))

    def node(self):
        return self.election.lock.node

    def stop(self):
        self.stopping = True
        self.election.cancel()
        self.let_go.set()
        self.thread.join(LIMIT_S)
        self.client.stop()
        self.client.close()


def main():
    connect, path, count, session_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    led = queue.Queue()
    contenders = []
    for i in range(count):
        c = Contender(i, connect, path, session_ms / 1000.0, led)
        contenders.append(c)
        c.thread.start()
        wait_until("%s has its node" % c.ident, lambda c=c: c.node() is not None)
    try:
        first, _ = led.get(timeout=LIMIT_S)
    except queue.Empty:
        fail("nobody leads")
    if first != 0:
        fail("c%03d leads, c000 joined first" % first)
    order = list(range(count))
    say("READY")
    for line in sys.stdin:
        command = line.strip()
        if command == "QUIT":
            break
        if command != "ROUND":
            fail("unknown command %r" % command)
        leader, successor = contenders[order[0]], order[1]
        old_node = leader.node()
        # The leader starts to let go.
        started = time.monotonic_ns()
        leader.let_go.set()
        try:
            index, led_at = led.get(timeout=LIMIT_S)
        except queue.Empty:
            fail("c%03d did not lead after c%03d let go" % (successor, leader.index))
        if index != successor:
            fail("c%03d leads, c%03d was next" % (index, successor))
        # Settled: the old leader is back at the tail with a node of its own.
        wait_until(
            "%s rejoins" % leader.ident,
            lambda: leader.node() is not None and leader.node() != old_node,
        )
        order = order[1:] + order[:1]
        say("ROUND %d" % ((led_at - started) // 1000))
    for c in contenders:
        c.stop()
    say("CLOSED")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        fail(repr(e))
