namespace Signal.Engine;

/// <summary>PEM files of a TLS server: its certificate, its private key and the CA that signed the certificate.</summary>
/// <param name="CertificateFile">The server's certificate (PEM).</param>
/// <param name="KeyFile">The server's private key (PEM, PKCS#8 or PKCS#1).</param>
/// <param name="CaFile">The certificate of the CA that signed it (PEM), for clients to trust.</param>
public sealed record TlsFiles(string CertificateFile, string KeyFile, string CaFile);
