using System.Net;
using System.Net.Sockets;
using System.Text;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>Client-side helpers: .NET sockets created inside the client namespace.</summary>
public static class Clients
{
    public static AddressFamily FamilyOf(string address) => IPAddress.Parse(address).AddressFamily;

    /// <summary>One HTTP/1.0 GET over a fresh TCP connection; returns the body.</summary>
    public static async Task<string> HttpGet(NetworkNamespace ns, string address, int port, string path = "/", int timeoutMs = 10000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        using var s = ns.Run(() => new Socket(FamilyOf(address), SocketType.Stream, ProtocolType.Tcp));
        await s.ConnectAsync(IPAddress.Parse(address), port, cts.Token);
        await s.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.0\r\nHost: {(FamilyOf(address) == AddressFamily.InterNetworkV6 ? $"[{address}]" : address)}\r\n\r\n"), SocketFlags.None, cts.Token);
        var response = new MemoryStream();
        var buf = new byte[16384];
        int n;
        while ((n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token)) > 0)
            response.Write(buf, 0, n);
        string text = Encoding.ASCII.GetString(response.ToArray());
        int body = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (!text.StartsWith("HTTP/1.0 200", StringComparison.Ordinal) || body < 0)
            throw new InvalidOperationException($"unexpected response: {text}");
        return text.Substring(body + 4);
    }

    /// <summary>A GET of an N-byte body that counts the bytes instead of keeping them; returns the count.</summary>
    public static async Task<long> Download(NetworkNamespace ns, string address, int port, long bytes, int timeoutMs)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        using var s = ns.Run(() => new Socket(FamilyOf(address), SocketType.Stream, ProtocolType.Tcp));
        await s.ConnectAsync(IPAddress.Parse(address), port, cts.Token);
        await s.SendAsync(Encoding.ASCII.GetBytes($"GET /bytes/{bytes} HTTP/1.0\r\n\r\n"), SocketFlags.None, cts.Token);
        var buf = new byte[65536];
        long total = 0;
        int n;
        while ((n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token)) > 0)
            total += n;
        return total;
    }

    /// <summary>Sends one datagram and waits for one answer.</summary>
    public static async Task<string> UdpRequest(NetworkNamespace ns, string address, int port, string message, int timeoutMs = 5000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        using var udp = ns.Run(() => new UdpClient(FamilyOf(address)));
        await udp.SendAsync(Encoding.ASCII.GetBytes(message), new IPEndPoint(IPAddress.Parse(address), port), cts.Token);
        var r = await udp.ReceiveAsync(cts.Token);
        return Encoding.ASCII.GetString(r.Buffer);
    }
}

/// <summary>A long-lived TCP connection to the backends' echo mode: proves a connection survives a change.</summary>
public sealed class EchoConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buf = new byte[4096];

    private EchoConnection(Socket s, string backend)
    {
        _socket = s;
        Backend = backend;
    }

    /// <summary>The backend address that answered ("ECHO from 10.20.0.2").</summary>
    public string Backend { get; }

    public static async Task<EchoConnection> Open(NetworkNamespace ns, string address, int port)
    {
        using var cts = new CancellationTokenSource(10000);
        var s = ns.Run(() => new Socket(Clients.FamilyOf(address), SocketType.Stream, ProtocolType.Tcp));
        await s.ConnectAsync(IPAddress.Parse(address), port, cts.Token);
        await s.SendAsync(Encoding.ASCII.GetBytes("ECHO\n"), SocketFlags.None, cts.Token);
        var sb = new StringBuilder();
        var buf = new byte[256];
        while (!sb.ToString().EndsWith('\n'))
        {
            int n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token);
            if (n == 0)
                throw new InvalidOperationException("echo connection closed before its greeting");
            sb.Append(Encoding.ASCII.GetString(buf, 0, n));
        }
        return new EchoConnection(s, sb.ToString().Trim().Replace("ECHO from ", "", StringComparison.Ordinal));
    }

    /// <summary>Sends a line and returns the echo.</summary>
    public async Task<string> RoundTrip(string line, int timeoutMs = 10000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        await _socket.SendAsync(Encoding.ASCII.GetBytes(line + "\n"), SocketFlags.None, cts.Token);
        var sb = new StringBuilder();
        while (!sb.ToString().EndsWith('\n'))
        {
            int n = await _socket.ReceiveAsync(_buf, SocketFlags.None, cts.Token);
            if (n == 0)
                throw new InvalidOperationException("echo connection closed");
            sb.Append(Encoding.ASCII.GetString(_buf, 0, n));
        }
        return sb.ToString().Trim();
    }

    public void Dispose() => _socket.Dispose();
}
