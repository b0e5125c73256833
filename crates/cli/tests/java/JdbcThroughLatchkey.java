import java.sql.*;

/** Connects through Latchkey's MySQL gateway with MariaDB Connector/J:
 *  args: port, user, token, CA file. Prints what the test checks. */
public class JdbcThroughLatchkey {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:mariadb://localhost:" + a[0] + "/shop?useSsl=true&serverSslCert=" + a[3];
        try (Connection c = DriverManager.getConnection(url, a[1], a[2])) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE IF NOT EXISTS jdbc_items (id INT PRIMARY KEY, name TEXT)");
                s.execute("DELETE FROM jdbc_items");
            }
            try (PreparedStatement p = c.prepareStatement("INSERT INTO jdbc_items VALUES (?, ?)")) {
                for (int i = 1; i <= 50; i++) { p.setInt(1, i); p.setString(2, "jdbc " + i); p.addBatch(); }
                p.executeBatch();
            }
            try (PreparedStatement p = c.prepareStatement("SELECT COUNT(*), CURRENT_USER() FROM jdbc_items WHERE id > ?")) {
                p.setInt(1, 10);
                try (ResultSet r = p.executeQuery()) { r.next(); System.out.println(r.getInt(1) + " " + r.getString(2)); }
            }
        }
    }
}
