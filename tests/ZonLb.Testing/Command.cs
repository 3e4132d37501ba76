using System.Diagnostics;
using System.Text;

namespace ZonLb.Testing;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;
}

/// <summary>Runs external programs (ip, ping, curl, ethtool) with a timeout; never leaves one running.</summary>
public static class Command
{
    public static CommandResult Run(string file, IEnumerable<string> args, TimeSpan? timeout = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin != null,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (stdin != null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        if (!p.WaitForExit(limit))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit();
            return new CommandResult(-1, stdout.ToString(), stderr + $"\n[timed out after {limit.TotalSeconds}s: {file} {string.Join(' ', args)}]");
        }
        p.WaitForExit();
        return new CommandResult(p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    public static CommandResult Run(string file, params string[] args) => Run(file, (IEnumerable<string>)args);

    /// <summary>Runs a bash script of the repository with zonlb-afxdp.dll from beside the tests (ZONLB_DLL); kills
    /// the whole process tree if it outlives the limit.</summary>
    public static async Task<CommandResult> RunScriptAsync(string root, string script, TimeSpan limit, params string[] args)
    {
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = root,
        };
        psi.ArgumentList.Add(Path.Combine(root, script));
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["ZONLB_DLL"] = ZonLbProcess.CliPath;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {script}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill(entireProcessTree: true); // a killed script cannot clean up; Topology.Create reaps its namespaces later
        }
        return new CommandResult(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>The repository's root (the folder holding ZonLb.sln) above the test assembly.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ZonLb.sln")))
                return d.FullName;
        throw new InvalidOperationException("the repository root was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Runs and throws with the whole output when the exit code is not 0.</summary>
    public static string Check(string file, params string[] args)
    {
        var r = Run(file, args);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        return r.Stdout;
    }
}
