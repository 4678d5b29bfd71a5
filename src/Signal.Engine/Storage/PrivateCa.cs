using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Signal.Engine.Storage;

/// <summary>
/// Server-certificate validation against a private certificate authority: the certificates of one PEM file are the
/// only trusted roots (in place of the system's), the server's name must match its certificate, and revocation is not
/// checked (a private CA on an edge network rarely publishes revocation lists). .NET's <see cref="X509Chain"/> does
/// the chain building; this only chooses its trust anchors.
/// </summary>
public static class PrivateCa
{
    /// <summary>Makes a handler trust the CAs of a PEM file for server certificates (nothing when the file is null).</summary>
    /// <param name="handler">The handler.</param>
    /// <param name="caFile">A PEM file holding one or more CA certificates, or null for the system's roots.</param>
    /// <returns>The handler.</returns>
    /// <exception cref="ArgumentException">The file does not exist or holds no certificate.</exception>
    public static SocketsHttpHandler Trusting(SocketsHttpHandler handler, string? caFile)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (caFile is not null)
        {
            handler.SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = Validator(caFile) };
        }

        return handler;
    }

    /// <summary>A validation callback for <see cref="SslClientAuthenticationOptions"/> that trusts the CAs in a PEM file.</summary>
    /// <param name="caFile">A PEM file holding one or more CA certificates.</param>
    /// <returns>The callback.</returns>
    /// <exception cref="ArgumentException">The file does not exist or holds no certificate.</exception>
    public static RemoteCertificateValidationCallback Validator(string caFile)
    {
        ArgumentException.ThrowIfNullOrEmpty(caFile);
        if (!File.Exists(caFile))
        {
            throw new ArgumentException($"caFile: '{caFile}' does not exist.", nameof(caFile));
        }

        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(caFile);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new ArgumentException($"caFile: '{caFile}' is not a PEM certificate file ({e.Message}).", nameof(caFile), e);
        }

        if (roots.Count == 0)
        {
            throw new ArgumentException($"caFile: '{caFile}' holds no PEM certificate.", nameof(caFile));
        }

        return (_, certificate, presented, errors) =>
        {
            if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
            {
                return false;
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (presented is not null)
            {
                // Intermediates the server sent may complete the chain; they are not trusted by themselves.
                foreach (X509ChainElement element in presented.ChainElements)
                {
                    chain.ChainPolicy.ExtraStore.Add(element.Certificate);
                }
            }

            using X509Certificate2 leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return chain.Build(leaf);
        };
    }
}
