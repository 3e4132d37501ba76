using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Runtime;

namespace ZonLb.Engine.Control;

/// <summary>
/// Serves the control socket of a running data path: a Unix domain socket, mode 0600 (root only), one JSON
/// request per line (see <see cref="ControlProtocol"/>). Replaces a stale socket file; removes its own on Dispose.
/// </summary>
public sealed class ControlServer : IDisposable
{
    private readonly Dataplane _dp;
    private readonly string _path;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Action<string> _log;

    /// <summary>Listens on the Unix socket <paramref name="path"/> (mode 0600; only uid 0 peers are served) and
    /// answers requests about and for <paramref name="loadBalancer"/>; a stale socket file is replaced.</summary>
    public ControlServer(LoadBalancer loadBalancer, string path, Action<string> log)
    {
        _dp = loadBalancer.Dataplane;
        _path = path;
        _log = log;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (File.Exists(path))
        {
            if (IsServed(path))
                throw new InvalidOperationException($"control socket {path} is in use by another zonlb-afxdp; set control_socket to another path");
            File.Delete(path); // left by a process that died
        }
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(16);
        _ = Task.Run(AcceptLoop);
    }

    /// <summary>Raised for a reload request, before it is applied (the CLI re-reads its file through this).</summary>
    public Func<Task<string>>? OnReload { get; set; }

    /// <summary>Whether a process answers on the control socket at path (a file nobody answers on is stale).</summary>
    internal static bool IsServed(string path)
    {
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => Serve(client));
        }
    }

    /// <summary>The uid of the process at the other end of a Unix socket (SO_PEERCRED), or -1.</summary>
    private static int PeerUid(Socket s)
    {
        Span<byte> cred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        try
        {
            int n = s.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred);
            return n >= 8 ? System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(cred.Slice(4)) : -1;
        }
        catch (SocketException)
        {
            return -1;
        }
    }

    private async Task Serve(Socket client)
    {
        // The file mode already keeps others out; the peer's credentials are checked as well, in case the
        // socket's mode or directory was opened up.
        int uid = PeerUid(client);
        if (uid != 0)
        {
            try
            {
                await client.SendAsync(Encoding.UTF8.GetBytes(ControlProtocol.Error($"the control socket serves root only (peer uid {uid})") + "\n"), SocketFlags.None);
            }
            catch (SocketException)
            {
            }
            client.Dispose();
            _log($"control: refused a connection from uid {uid}");
            return;
        }
        using var stream = new NetworkStream(client, ownsSocket: true);
        var reader = PipeReader.Create(stream);
        try
        {
            while (true)
            {
                var read = await reader.ReadAsync(_stop.Token);
                var buffer = read.Buffer;
                if (buffer.Length > 1 << 20 && buffer.PositionOf((byte)'\n') == null)
                {
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(ControlProtocol.Error("request line longer than 1 MiB") + "\n"), _stop.Token);
                    break;
                }
                while (TryReadLine(ref buffer, out var line))
                {
                    string response = await Handle(Encoding.UTF8.GetString(line));
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(response + "\n"), _stop.Token);
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted)
                    break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
        {
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var newline = buffer.PositionOf((byte)'\n');
        if (newline == null)
        {
            line = default;
            return false;
        }
        line = buffer.Slice(0, newline.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
        return true;
    }

    /// <summary>Executes one request line and returns the response line.</summary>
    public async Task<string> Handle(string requestLine)
    {
        try
        {
            var req = JsonNode.Parse(requestLine) as JsonObject ?? throw new InvalidOperationException("request must be a JSON object");
            string command = req["command"]?.GetValue<string>() ?? throw new InvalidOperationException("request has no command");
            var args = req["args"] as JsonObject ?? new JsonObject();
            object? result = command switch
            {
                "status" => await _dp.GetStatus(),
                "stats" => await _dp.GetStats(),
                "conntrack.list" => await _dp.ListConnections(Str(args, "service"), (int?)Int(args, "limit") ?? 10000),
                "conntrack.flush" => new { flushed = await _dp.FlushConnections(Str(args, "service")) },
                "neighbors.list" or "routes.list" => await _dp.ListNextHops(),
                "backend" => new
                {
                    message = await _dp.ChangeBackend(
                        Str(args, "action") ?? throw new InvalidOperationException("backend: action missing"),
                        Str(args, "service") ?? throw new InvalidOperationException("backend: service missing"),
                        System.Net.IPAddress.Parse(Str(args, "address") ?? throw new InvalidOperationException("backend: address missing")),
                        (ushort?)Int(args, "port"), (int?)Int(args, "weight") ?? 1),
                },
                "reload" => new { message = OnReload != null ? await OnReload() : await _dp.Reload(ConfigLoader.LoadFile(_dp.Config.Source)) },
                "config.show" => new { toml = ConfigWriter.Write(_dp.Config) },
                _ => throw new InvalidOperationException($"unknown command '{(command.Length > 40 ? command[..40] + "..." : command)}'"),
            };
            return ControlProtocol.Ok(result);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ConfigException or System.Text.Json.JsonException or Native.Interop.NativeException)
        {
            return ControlProtocol.Error(e.Message);
        }
        catch (Exception e)
        {
            _log($"control: {e}");
            return ControlProtocol.Error(e.Message);
        }
    }

    private static string? Str(JsonObject o, string key) => o[key]?.GetValue<string>();

    private static long? Int(JsonObject o, string key) => o[key]?.GetValue<long>();

    /// <summary>Stops listening and removes the socket file.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
    }
}
