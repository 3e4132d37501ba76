using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ZonLb.Testing;

/// <summary>
/// A `zonlb-afxdp` process started inside a namespace (`ip netns exec NS dotnet zonlb-afxdp.dll ...`), with its
/// output collected line by line. Stop sends SIGTERM, as an operator's service manager would; Dispose kills
/// what is still running.
/// </summary>
public sealed class ZonLbProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly string _configPath;

    private ZonLbProcess(Process process, string configPath, string socketPath)
    {
        _process = process;
        _configPath = configPath;
        SocketPath = socketPath;
    }

    /// <summary>This instance's control socket (a fresh path per instance, so tests never collide).</summary>
    public string SocketPath { get; }

    /// <summary>The configuration file it runs with; tests rewrite it before a reload.</summary>
    public string ConfigPath => _configPath;

    public int Pid => _process.Id;

    /// <summary>Every line printed so far (stdout and stderr).</summary>
    public string Output
    {
        get { lock (_lines) return string.Join('\n', _lines); }
    }

    /// <summary>The zonlb-afxdp.dll beside the test assembly.</summary>
    public static string CliPath => Path.Combine(AppContext.BaseDirectory, "zonlb-afxdp.dll");

    /// <param name="defaultSigint">Start the program with SIGINT at its default disposition (through perl, which
    /// is in every Debian), so that a SIGINT test works even when this test process inherited an ignored SIGINT
    /// from a script that started it in the background.</param>
    /// <param name="injectFault">Sets ZONLB_INJECT_FAULT for the program (worker | unhandled).</param>
    /// <param name="wrapper">A command (and its arguments) that runs zonlb-afxdp, e.g. setpriv to drop a capability.</param>
    /// <param name="environment">Variables set for the program (e.g. NOTIFY_SOCKET).</param>
    /// <param name="arguments">Arguments after `run --config FILE` (the default: none).</param>
    public static ZonLbProcess Start(NetworkNamespace ns, string configToml, bool defaultSigint = false, string? injectFault = null,
        IReadOnlyList<string>? wrapper = null, IReadOnlyDictionary<string, string>? environment = null, IReadOnlyList<string>? arguments = null)
    {
        string id = Guid.NewGuid().ToString("N");
        string config = Path.Combine(Path.GetTempPath(), $"zonlb-test-{id}.toml");
        string socket = Path.Combine(Path.GetTempPath(), $"zonlb-test-{id}.sock");
        if (!configToml.Contains("control_socket", StringComparison.Ordinal))
            configToml = $"control_socket = \"{socket}\"\n" + configToml;
        File.WriteAllText(config, configToml);
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (injectFault != null)
            psi.Environment["ZONLB_INJECT_FAULT"] = injectFault;
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            psi.Environment[name] = value;
        var command = new List<string> { "netns", "exec", ns.Name };
        if (defaultSigint)
            command.AddRange(new[] { "perl", "-e", "$SIG{INT} = 'DEFAULT'; exec @ARGV or die \"exec: $!\"", "--" });
        if (wrapper != null)
            command.AddRange(wrapper);
        command.AddRange(new[] { "dotnet", CliPath, "run", "--config", config });
        if (arguments != null)
            command.AddRange(arguments);
        foreach (var a in command)
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start zonlb-afxdp");
        var z = new ZonLbProcess(p, config, socket);
        p.OutputDataReceived += (_, e) => z.Add(e.Data);
        p.ErrorDataReceived += (_, e) => z.Add(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return z;
    }

    private void Add(string? line)
    {
        if (line == null)
            return;
        lock (_lines)
        {
            _lines.Add(line);
            Monitor.PulseAll(_lines);
        }
    }

    /// <summary>Waits until a printed line contains text; false on timeout or when the process exited first.</summary>
    public bool WaitForLine(string text, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        lock (_lines)
        {
            while (true)
            {
                if (_lines.Any(l => l.Contains(text, StringComparison.Ordinal)))
                    return true;
                if (_process.HasExited && sw.Elapsed > TimeSpan.FromMilliseconds(200))
                    return false;
                var left = timeout - sw.Elapsed;
                if (left <= TimeSpan.Zero)
                    return false;
                Monitor.Wait(_lines, left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100));
            }
        }
    }

    /// <summary>Waits until the engine reports it is forwarding; throws with its output otherwise.</summary>
    public ZonLbProcess WaitUntilRunning()
    {
        if (!WaitForLine("running with", TimeSpan.FromSeconds(30)))
            throw new InvalidOperationException($"zonlb-afxdp did not start:\n{Output}");
        return this;
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code, or null on timeout.</summary>
    public int? WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            return null;
        _process.WaitForExit(); // drain output
        return _process.ExitCode;
    }

    /// <summary>Runs `zonlb-afxdp ARGS --socket THIS` (a control command) and returns what it printed.</summary>
    public CommandResult Control(params string[] args) =>
        Command.Run("dotnet", new[] { CliPath }.Concat(args).Concat(new[] { "--socket", SocketPath }), TimeSpan.FromSeconds(60));

    /// <summary>The dotnet process that runs the program (`ip netns exec` forks it, so it is not <see cref="Pid"/>).</summary>
    public int ProgramPid()
    {
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
                continue;
            string cmdline;
            try
            {
                cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
            }
            catch (IOException)
            {
                continue;
            }
            if (cmdline.StartsWith("dotnet\0", StringComparison.Ordinal) && cmdline.Contains(_configPath, StringComparison.Ordinal))
                return pid;
        }
        throw new InvalidOperationException($"the program's process was not found:\n{Output}");
    }

    /// <summary>The program's resident memory (VmRSS), in bytes.</summary>
    public long ResidentBytes()
    {
        var line = File.ReadAllLines($"/proc/{ProgramPid()}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Sends a signal to the process.</summary>
    public void Signal(int signal) => kill(_process.Id, signal);

    /// <summary>Sends a signal (SIGTERM unless told) and waits for the exit code.</summary>
    public int Stop(int signal = SIGTERM, TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
            kill(_process.Id, signal);
        int? code = WaitForExit(timeout ?? TimeSpan.FromSeconds(20));
        if (code == null)
            throw new InvalidOperationException($"zonlb-afxdp did not stop on signal {signal}:\n{Output}");
        return code.Value;
    }

    /// <summary>SIGKILL: the process gets no chance to clean up.</summary>
    public void Kill()
    {
        kill(_process.Id, 9);
        _process.WaitForExit(10000);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            try { _process.Kill(); } catch (InvalidOperationException) { }
            _process.WaitForExit(5000);
        }
        _process.Dispose();
        File.Delete(_configPath);
    }

    public const int SIGHUP = 1;
    public const int SIGINT = 2;
    public const int SIGTERM = 15;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
