// ci/X509Subject.java — prints the subject of each PEM certificate given, one a line, as Java writes it
// (X500Principal.getName(), RFC 2253): the x509 id ZooKeeper's X509AuthenticationProvider gives
// a TLS client. ci/clients.sh runs it (`java ci/X509Subject.java a.pem b.pem`) to check that zabd
// gives the same id.
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

public class X509Subject {
    public static void main(String[] args) throws Exception {
        for (String file : args) {
            try (FileInputStream in = new FileInputStream(file)) {
                X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509")
                        .generateCertificate(in);
                System.out.println(cert.getSubjectX500Principal().getName());
            }
        }
    }
}
