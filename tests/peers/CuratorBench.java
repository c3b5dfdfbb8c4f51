// Curator's side of the side-by-side hand-over benchmark (tests/src/bin/zk_compare.rs): C stock
// Curator 5 LeaderLatch contenders on one path, in this one JVM, each with a CuratorFramework
// (a ZooKeeper session) of its own. Compiled with javac at run time against Debian's
// libcurator-*-java.
//
// Usage: java CuratorBench CONNECT PATH C SESSION_MS
//
// The leader's work starts when LeaderLatchListener.isLeader() is called. The leader lets go with
// latch.close() (a LeaderLatch cannot be restarted), and rejoins at the tail right away with a new
// LeaderLatch on the same client (the same session).
//
// Says on stdout, one line each:
// - "READY" once all C latches have their node, in order, and the first one leads;
// - for each "ROUND" read on stdin: System.nanoTime() is read just before the leader's close(),
//   and again when the next leader's isLeader() starts; once the old leader's new latch has its
//   node, "ROUND <microseconds>" (the interval between the two readings);
// - "ERROR <text>" and exit status 1 when anything fails or takes longer than 30 s;
// - "CLOSED" after "QUIT" (or EOF) once every latch and every session is closed.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.RetryNTimes;

public class CuratorBench {
    static final long LIMIT_MS = 30_000;

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void fail(String text) {
        say("ERROR " + text);
        System.exit(1);
    }

    /** (contender index, System.nanoTime() when its isLeader() started) */
    static final LinkedBlockingQueue<long[]> LED = new LinkedBlockingQueue<>();

    static final class Contender {
        final int index;
        final String id;
        final String path;
        final CuratorFramework client;
        volatile LeaderLatch latch;

        Contender(int index, String connect, String path, int sessionMs) throws Exception {
            this.index = index;
            this.id = String.format("c%03d", index);
            this.path = path;
            client = CuratorFrameworkFactory.builder()
                    .connectString(connect)
                    .sessionTimeoutMs(sessionMs)
                    .connectionTimeoutMs((int) LIMIT_MS)
                    .retryPolicy(new RetryNTimes(20, 100))
                    .build();
            client.start();
            if (!client.blockUntilConnected((int) LIMIT_MS, TimeUnit.MILLISECONDS)) {
                fail(id + ": not connected");
            }
        }

        /** Joins (again) with a new latch; does not wait for its node. */
        void join() throws Exception {
            LeaderLatch l = new LeaderLatch(client, path, id);
            l.addListener(new LeaderLatchListener() {
                public void isLeader() {
                    // The leader's work starts.
                    LED.add(new long[] {index, System.nanoTime()});
                }

                public void notLeader() {}
            });
            l.start();
            latch = l;
        }

        /** Waits until the latch has its node. */
        void placed() throws Exception {
            LeaderLatch l = latch;
            long deadline = System.currentTimeMillis() + LIMIT_MS;
            while (l.getOurPath() == null) {
                if (System.currentTimeMillis() > deadline) {
                    fail(id + ": the latch has no node");
                }
                Thread.sleep(1);
            }
        }
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) {
            fail(e.toString());
        }
    }

    static void run(String[] args) throws Exception {
        String connect = args[0], path = args[1];
        int count = Integer.parseInt(args[2]);
        int sessionMs = Integer.parseInt(args[3]);
        List<Contender> contenders = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Contender c = new Contender(i, connect, path, sessionMs);
            c.join();
            c.placed();
            contenders.add(c);
        }
        long[] first = LED.poll(LIMIT_MS, TimeUnit.MILLISECONDS);
        if (first == null) {
            fail("nobody leads");
        }
        if (first[0] != 0) {
            fail(String.format("c%03d leads, c000 joined first", first[0]));
        }
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            order.add(i);
        }
        say("READY");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String command = line.trim();
            if (command.equals("QUIT")) {
                break;
            }
            if (!command.equals("ROUND")) {
                fail("unknown command " + command);
            }
            Contender leader = contenders.get(order.get(0));
            int successor = order.get(1);
            // The leader starts to let go.
            long started = System.nanoTime();
            leader.latch.close();
            // Rejoins at the tail at once, as a kazoo contender's loop and our resign() do.
            leader.join();
            long[] led = LED.poll(LIMIT_MS, TimeUnit.MILLISECONDS);
            if (led == null) {
                fail(String.format("c%03d did not lead after %s let go", successor, leader.id));
            }
            if (led[0] != successor) {
                fail(String.format("c%03d leads, c%03d was next", led[0], successor));
            }
            // Settled: the old leader is back at the tail with a node of its own.
            leader.placed();
            order.add(order.remove(0));
            say("ROUND " + (led[1] - started) / 1000);
        }
        for (Contender c : contenders) {
            c.latch.close();
            c.client.close();
        }
        say("CLOSED");
        System.exit(0);
    }
}
