using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Signal.Engine.Tests;

/// <summary>A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files in a temp folder.</summary>
internal sealed class TestCertificates : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("signal-certs-").FullName;

    public TestCertificates()
    {
        DateTimeOffset from = DateTimeOffset.UtcNow.AddDays(-1), to = DateTimeOffset.UtcNow.AddDays(1);
        using RSA caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=Signal test CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using X509Certificate2 ca = caRequest.CreateSelfSigned(from, to);
        Ca = Write("ca.crt", ca.ExportCertificatePem());
        (ServerCert, ServerKey) = Issue(ca, "server", "1.3.6.1.5.5.7.3.1", from, to, 1);
        (ClientCert, ClientKey) = Issue(ca, "client", "1.3.6.1.5.5.7.3.2", from, to, 2);
    }

    public string Ca { get; }

    public string ServerCert { get; }

    public string ServerKey { get; }

    public string ClientCert { get; }

    public string ClientKey { get; }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private (string Cert, string Key) Issue(X509Certificate2 ca, string name, string usage, DateTimeOffset from, DateTimeOffset to, byte serial)
    {
        using RSA key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using X509Certificate2 cert = request.Create(ca, from, to, [serial]);
        return (Write(name + ".crt", cert.ExportCertificatePem()), Write(name + ".key", key.ExportPkcs8PrivateKeyPem()));
    }

    private string Write(string name, string pem)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllText(path, pem);

        // The broker drops to the 'mosquitto' user when started as root: it must read these.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, (UnixFileMode)0x1A4);
            File.SetUnixFileMode(_folder, (UnixFileMode)0x1ED);
        }

        return path;
    }
}
