package local.gateway.tests;

import java.net.InetSocketAddress;
import java.util.List;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/**
 * mongo-java-server with its memory backend on 127.0.0.1, for the gateway's
 * integration tests. Nothing is written to disk: the data lives as long as
 * the process.
 *
 * <pre>
 *   java -cp "DIR/*" local.gateway.tests.MongoJavaTestServer PORT [HOST]
 * </pre>
 *
 * Prints one line "mongo-java-server ready on HOST:PORT ..." once it accepts
 * connections (PORT 0 picks a free port, which that line names), and runs
 * until SIGTERM or SIGINT.
 */
public final class MongoJavaTestServer {

    /**
     * Presents the server as MongoDB 5.0 with wire version 13, the real 5.0's.
     * The library's own ServerVersion.MONGO_5_0 advertises wire version 8,
     * which pymongo 4.x refuses (it needs at least 9: MongoDB 4.2); libmongoc
     * 1.23 accepts both. The version only changes what hello/isMaster and
     * buildInfo report, not what the server does.
     */
    static final MongoVersion MONGO_5_0_WIRE_13 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    };

    public static void main(String[] args) {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: MongoJavaTestServer PORT [HOST]   (HOST defaults to 127.0.0.1)");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        String host = args.length > 1 ? args[1] : "127.0.0.1";

        MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_5_0_WIRE_13));
        server.bind(host, port);
        // SIGTERM/SIGINT run the shutdown hooks: close the listener and the
        // connections, then the JVM exits (143 after SIGTERM).
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow, "shutdown"));

        InetSocketAddress addr = server.getLocalAddress();
        System.out.println("mongo-java-server ready on " + addr.getHostString() + ":" + addr.getPort()
                + " (memory backend, MongoDB " + MONGO_5_0_WIRE_13.toVersionString()
                + ", wire version " + MONGO_5_0_WIRE_13.getWireVersion() + ")");
        System.out.flush();
        // Netty's event loop threads keep the JVM running until a signal.
    }
}
