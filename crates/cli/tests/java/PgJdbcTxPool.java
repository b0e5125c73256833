import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

/** PostgreSQL's JDBC driver through Latchkey's PostgreSQL gateway in
 *  transaction pooling, with server-side prepared statements from the
 *  first execution (prepareThreshold=1): args: port, token, CA file,
 *  threads, rounds. Each thread writes its own rows in transactions and
 *  reads them back with prepared statements. Prints "ok ROWS" or the
 *  first failure. */
public class PgJdbcTxPool {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://localhost:" + a[0] + "/orders?sslmode=verify-full&sslrootcert=" + a[2]
            + "&prepareThreshold=1";
        int threads = Integer.parseInt(a[3]), rounds = Integer.parseInt(a[4]);
        try (Connection c = DriverManager.getConnection(url, "app", a[1]); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS jdbc_rows (thread int, n int)");
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        List<Future<String>> results = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final int me = t;
            results.add(pool.submit(() -> {
                try (Connection c = DriverManager.getConnection(url, "app", a[1])) {
                    c.setAutoCommit(false);
                    try (PreparedStatement insert = c.prepareStatement("INSERT INTO jdbc_rows VALUES (?, ?)");
                         PreparedStatement count = c.prepareStatement("SELECT count(*), max(n) FROM jdbc_rows WHERE thread = ?")) {
                        for (int n = 0; n < rounds; n++) {
                            insert.setInt(1, me); insert.setInt(2, n); insert.executeUpdate();
                            count.setInt(1, me);
                            try (ResultSet r = count.executeQuery()) {
                                r.next();
                                if (r.getInt(1) != n + 1 || r.getInt(2) != n) return "thread " + me + " round " + n + ": " + r.getInt(1);
                            }
                            c.commit();
                        }
                    }
                }
                return "";
            }));
        }
        for (Future<String> f : results) {
            String r = f.get();
            if (!r.isEmpty()) { System.out.println(r); pool.shutdown(); return; }
        }
        pool.shutdown();
        try (Connection c = DriverManager.getConnection(url, "app", a[1]); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT count(*) FROM jdbc_rows")) {
            r.next();
            System.out.println("ok " + r.getInt(1));
        }
    }
}
