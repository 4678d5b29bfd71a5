namespace Signal.Engine;

/// <summary>
/// TLS settings of a private loopback server (<see cref="Mqtt.LocalMosquitto"/>, <see cref="Storage.LocalInfluxDb"/>),
/// as PEM files.
/// </summary>
/// <param name="CaFile">The CA certificate that signed the server's (and the clients') certificates; clients trust it.</param>
/// <param name="CertFile">The server certificate.</param>
/// <param name="KeyFile">The server's private key (PKCS#8 or PKCS#1).</param>
/// <param name="RequireClientCertificate">Whether clients must present a certificate signed by the CA (mosquitto only).</param>
public sealed record TlsFiles(string CaFile, string CertFile, string KeyFile, bool RequireClientCertificate = false);
