// A stock Curator 5 contender for the mixed-fleet tests (tests/tests/zk_mixed_fleet.rs):
// a LeaderLatch, or an InterProcessMutex held as a leader lock (the Maxwell HA patch), on one
// path. Compiled with javac at test time against Debian's libcurator-*-java.
//
// Usage: java CuratorPeer CONNECT PATH ID latch|mutex SESSION_MS
// Says on stdout, one line each: "NODE <name>" once its node exists, "LEADER" when it leads,
// "NOT_LEADER" when it stops leading (before its node is deleted), "CLOSED" when closed. Reads "CLOSE" on stdin (or EOF):
// gives up (latch.close() / mutex.release()) and exits.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;

public class CuratorPeer {
    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String connect = args[0], path = args[1], id = args[2], mode = args[3];
        int sessionMs = Integer.parseInt(args[4]);
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connect)
                .sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(sessionMs)
                .retryPolicy(new RetryNTimes(20, 100))
                .build();
        client.start();
        client.blockUntilConnected();
        CountDownLatch close = new CountDownLatch(1);
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(
                    new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.trim().equals("CLOSE")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // EOF or a broken pipe: close as asked.
            }
            close.countDown();
        });
        stdin.setDaemon(true);
        stdin.start();
        if (mode.equals("latch")) {
            LeaderLatch latch = new LeaderLatch(client, path, id);
            latch.addListener(new LeaderLatchListener() {
                public void isLeader() { say("LEADER"); }
                public void notLeader() { say("NOT_LEADER"); }
            });
            latch.start();
            while (latch.getOurPath() == null) {
                Thread.sleep(10);
            }
            say("NODE " + latch.getOurPath().substring(path.length() + 1));
            close.await();
            if (latch.hasLeadership()) {
                // Stops acting as leader first, then gives its node up (close() does not call
                // the listener).
                say("NOT_LEADER");
            }
            latch.close();
        } else {
            InterProcessMutex mutex = new InterProcessMutex(client, path);
            Thread holder = new Thread(() -> {
                try {
                    mutex.acquire();
                    say("LEADER");
                    close.await();
                    say("NOT_LEADER");
                    mutex.release();
                } catch (InterruptedException e) {
                    // Closed before it acquired: acquire() deleted its node.
                } catch (Exception e) {
                    say("ERROR " + e);
                }
            });
            holder.start();
            // The lock node is not exposed: it is the "-lock-" child our session owns.
            long session = client.getZookeeperClient().getZooKeeper().getSessionId();
            String node = null;
            while (node == null) {
                java.util.List<String> children;
                try {
                    children = client.getChildren().forPath(path);
                } catch (org.apache.zookeeper.KeeperException.NoNodeException e) {
                    children = java.util.List.of();
                }
                for (String child : children) {
                    org.apache.zookeeper.data.Stat stat =
                            client.checkExists().forPath(path + "/" + child);
                    if (child.contains("-lock-") && stat != null
                            && stat.getEphemeralOwner() == session) {
                        node = child;
                    }
                }
                if (node == null) {
                    Thread.sleep(10);
                }
            }
            say("NODE " + node);
            close.await();
            holder.join(2000);
            if (holder.isAlive()) {
                holder.interrupt();
                holder.join(2000);
            }
        }
        client.close();
        say("CLOSED");
        System.exit(0);
    }
}
