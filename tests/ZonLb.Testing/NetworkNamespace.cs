using System.Runtime.InteropServices;

namespace ZonLb.Testing;

/// <summary>
/// A network namespace made for one test run, named zlbt&lt;pid&gt;-&lt;n&gt;-&lt;role&gt; so that it is unique and
/// recognisably ours; deleted on Dispose (with every interface inside it). Namespaces left by a test process
/// that died are deleted by <see cref="ReapOrphans"/>, which only touches names carrying a dead PID.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    private const string Prefix = "zlbt";
    private static int _sequence;
    private bool _deleted;

    private NetworkNamespace(string name) => Name = name;

    public string Name { get; }

    public static NetworkNamespace Create(string role)
    {
        string name = $"{Prefix}{Environment.ProcessId}-{Interlocked.Increment(ref _sequence)}-{role}";
        Command.Check("ip", "netns", "add", name);
        var ns = new NetworkNamespace(name);
        ns.Ip("link", "set", "lo", "up");
        return ns;
    }

    /// <summary>Runs `ip -n NAME args` and throws on failure.</summary>
    public string Ip(params string[] args) => Command.Check("ip", new[] { "-n", Name }.Concat(args).ToArray());

    /// <summary>Runs a program inside the namespace.</summary>
    public CommandResult Exec(TimeSpan timeout, params string[] command) =>
        Command.Run("ip", new[] { "netns", "exec", Name }.Concat(command), timeout);

    /// <summary>Runs f on a fresh thread that has entered this namespace; sockets it creates live here.</summary>
    public T Run<T>(Func<T> f)
    {
        T? result = default;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try
            {
                using var fd = File.OpenHandle($"/var/run/netns/{Name}");
                if (setns((int)fd.DangerousGetHandle(), CLONE_NEWNET) != 0)
                    throw new InvalidOperationException($"setns({Name}) failed: errno {Marshal.GetLastPInvokeError()}");
                result = f();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        t.Start();
        t.Join();
        if (error != null)
            throw new InvalidOperationException($"in namespace {Name}: {error.Message}", error);
        return result!;
    }

    public void Dispose()
    {
        if (_deleted)
            return;
        _deleted = true;
        Command.Run("ip", "netns", "del", Name);
    }

    /// <summary>Deletes namespaces of ours (the tests' zlbt&lt;pid&gt;-..., the soak script's zsoak&lt;pid&gt;-...)
    /// whose creating process no longer exists.</summary>
    public static void ReapOrphans()
    {
        var r = Command.Run("ip", "netns", "list");
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ')[0];
            string? prefix = new[] { Prefix, "zsoak" }.FirstOrDefault(p => name.StartsWith(p, StringComparison.Ordinal));
            if (prefix == null)
                continue;
            int dash = name.IndexOf('-');
            if (dash < 0 || !int.TryParse(name.AsSpan(prefix.Length, dash - prefix.Length), out int pid))
                continue;
            if (pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
                Command.Run("ip", "netns", "del", name);
        }
    }

    private const int CLONE_NEWNET = 0x40000000;

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);
}
