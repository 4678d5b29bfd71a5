using System.Runtime.InteropServices;

namespace Signal.Engine.Mqtt;

/// <summary>
/// P/Invoke declarations for Eclipse libmosquitto 2.0 (Debian <c>libmosquitto1</c>, <c>libmosquitto.so.1</c>).
/// Hand-written because no MQTT client library is on our package feed; only the calls
/// <see cref="MosquittoConnection"/> uses are bound. Signatures follow <c>mosquitto.h</c> of 2.0.11.
/// </summary>
internal static unsafe partial class LibMosquitto
{
    public const string Library = "libmosquitto.so.1";

    public const int Success = 0;
    public const int ErrorNoConnection = 4;
    public const int ErrorConnectionLost = 7;
    public const int OptionProtocolVersion = 1;
    public const int OptionReceiveMaximum = 4;
    public const int OptionTcpNoDelay = 11;
    public const int PropertySessionExpiryInterval = 17;

    /// <summary>The layout of <c>struct mosquitto_message</c> (natural alignment, as the C compiler lays it out).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Message
    {
        public int Mid;
        public byte* Topic;
        public byte* Payload;
        public int PayloadLength;
        public int Qos;
        public byte Retain;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollDescriptor
    {
        public int Descriptor;
        public short Events;
        public short ReturnedEvents;
    }

    [LibraryImport(Library, EntryPoint = "mosquitto_lib_init")]
    public static partial int LibInit();

    [LibraryImport(Library, EntryPoint = "mosquitto_lib_version")]
    public static partial int LibVersion(out int major, out int minor, out int revision);

    [LibraryImport(Library, EntryPoint = "mosquitto_new", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint New(string id, [MarshalAs(UnmanagedType.U1)] bool cleanSession, nint userData);

    [LibraryImport(Library, EntryPoint = "mosquitto_destroy")]
    public static partial void Destroy(nint mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_threaded_set")]
    public static partial int ThreadedSet(MosquittoHandle mosq, [MarshalAs(UnmanagedType.U1)] bool threaded);

    [LibraryImport(Library, EntryPoint = "mosquitto_int_option")]
    public static partial int IntOption(MosquittoHandle mosq, int option, int value);

    [LibraryImport(Library, EntryPoint = "mosquitto_username_pw_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int UsernamePasswordSet(MosquittoHandle mosq, string? username, string? password);

    [LibraryImport(Library, EntryPoint = "mosquitto_tls_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int TlsSet(MosquittoHandle mosq, string? caFile, string? caPath, string? certFile, string? keyFile, nint passwordCallback);

    [LibraryImport(Library, EntryPoint = "mosquitto_tls_insecure_set")]
    public static partial int TlsInsecureSet(MosquittoHandle mosq, [MarshalAs(UnmanagedType.U1)] bool value);

    [LibraryImport(Library, EntryPoint = "mosquitto_will_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int WillSet(MosquittoHandle mosq, string topic, int payloadLength, byte* payload, int qos, [MarshalAs(UnmanagedType.U1)] bool retain);

    [LibraryImport(Library, EntryPoint = "mosquitto_connect", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Connect(MosquittoHandle mosq, string host, int port, int keepAlive);

    [LibraryImport(Library, EntryPoint = "mosquitto_connect_bind_v5", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ConnectV5(MosquittoHandle mosq, string host, int port, int keepAlive, string? bindAddress, nint properties);

    [LibraryImport(Library, EntryPoint = "mosquitto_property_add_int32")]
    public static partial int PropertyAddInt32(ref nint properties, int identifier, uint value);

    [LibraryImport(Library, EntryPoint = "mosquitto_property_free_all")]
    public static partial void PropertyFreeAll(ref nint properties);

    [LibraryImport(Library, EntryPoint = "mosquitto_reconnect")]
    public static partial int Reconnect(MosquittoHandle mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_disconnect")]
    public static partial int Disconnect(MosquittoHandle mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_subscribe", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Subscribe(MosquittoHandle mosq, out int mid, string pattern, int qos);

    [LibraryImport(Library, EntryPoint = "mosquitto_publish")]
    public static partial int Publish(MosquittoHandle mosq, out int mid, byte* topic, int payloadLength, byte* payload, int qos, [MarshalAs(UnmanagedType.U1)] bool retain);

    [LibraryImport(Library, EntryPoint = "mosquitto_loop_read")]
    public static partial int LoopRead(MosquittoHandle mosq, int maxPackets);

    [LibraryImport(Library, EntryPoint = "mosquitto_loop_write")]
    public static partial int LoopWrite(MosquittoHandle mosq, int maxPackets);

    [LibraryImport(Library, EntryPoint = "mosquitto_loop_misc")]
    public static partial int LoopMisc(MosquittoHandle mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_socket")]
    public static partial int Socket(MosquittoHandle mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_want_write")]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool WantWrite(MosquittoHandle mosq);

    [LibraryImport(Library, EntryPoint = "mosquitto_connect_callback_set")]
    public static partial void ConnectCallbackSet(MosquittoHandle mosq, delegate* unmanaged[Cdecl]<nint, nint, int, void> callback);

    [LibraryImport(Library, EntryPoint = "mosquitto_disconnect_callback_set")]
    public static partial void DisconnectCallbackSet(MosquittoHandle mosq, delegate* unmanaged[Cdecl]<nint, nint, int, void> callback);

    [LibraryImport(Library, EntryPoint = "mosquitto_unsubscribe", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unsubscribe(MosquittoHandle mosq, out int mid, string pattern);

    [LibraryImport(Library, EntryPoint = "mosquitto_subscribe_callback_set")]
    public static partial void SubscribeCallbackSet(MosquittoHandle mosq, delegate* unmanaged[Cdecl]<nint, nint, int, int, int*, void> callback);

    [LibraryImport(Library, EntryPoint = "mosquitto_message_callback_set")]
    public static partial void MessageCallbackSet(MosquittoHandle mosq, delegate* unmanaged[Cdecl]<nint, nint, Message*, void> callback);

    [LibraryImport(Library, EntryPoint = "mosquitto_strerror")]
    public static partial nint StrError(int error);

    [LibraryImport(Library, EntryPoint = "mosquitto_connack_string")]
    public static partial nint ConnackString(int code);

    // libc: poll(2) and eventfd(2), so the network loop can wait on the broker socket and a wake-up together.
    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollDescriptor* descriptors, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int descriptor, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int descriptor, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int descriptor);

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8(StrError(error)) ?? $"error {error}";

    public static string ConnackText(int code) => Marshal.PtrToStringUTF8(ConnackString(code)) ?? $"code {code}";
}

/// <summary>Owns a <c>struct mosquitto *</c>; releasing it calls <c>mosquitto_destroy</c>.</summary>
internal sealed class MosquittoHandle : SafeHandle
{
    public MosquittoHandle()
        : base(0, ownsHandle: true)
    {
    }

    public MosquittoHandle(nint handle)
        : base(0, ownsHandle: true) => SetHandle(handle);

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        LibMosquitto.Destroy(handle);
        return true;
    }
}
