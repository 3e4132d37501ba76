using System.CommandLine;
using System.Text.Json;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Diagnostics;

namespace ZonLb.Cli.Commands;

/// <summary>`doctor --config FILE [--json]`: checks this host against a configuration, one line per check.</summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { HelpName = "FILE", Description = "The configuration to check the host against.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the checks as JSON." };
        var cmd = new Command("doctor",
            "Check this host (the network namespace it runs in) against a configuration: interfaces, queues, XDP attach\n" +
            "state, checksum offload and repair, MTU vs UMEM frame size, memlock, bpffs, kernel and library versions,\n" +
            "IP forwarding and rp_filter, backend next hops. One line per check: ok, warning or error, and what to do.\n" +
            "Exit code 0 when all is fine, 1 with warnings, 2 with errors.\n" +
            "Example: ip netns exec lb zonlb-afxdp doctor --config /etc/zonlb/zonlb.toml") { config, json };
        cmd.SetAction(r => Execute(r.GetValue(config)!, r.GetValue(json)));
        return cmd;
    }

    public static int Execute(string path, bool json)
    {
        List<HostCheck> checks;
        try
        {
            var cfg = ConfigLoader.LoadFile(path);
            checks = Doctor.Run(cfg);
            checks.Insert(0, new HostCheck("config", CheckStatus.Ok, $"{path}: {cfg.Interfaces.Count} interface(s), {cfg.Services.Count} service(s)"));
        }
        catch (ConfigException e)
        {
            checks = new List<HostCheck> { new("config", CheckStatus.Error, e.Message) };
        }
        int exit = Doctor.ExitCode(checks);
        if (json)
        {
            var doc = new
            {
                checks = checks.Select(c => new { name = c.Name, status = c.Status.ToString().ToLowerInvariant(), message = c.Message }),
                errors = checks.Count(c => c.Status == CheckStatus.Error),
                warnings = checks.Count(c => c.Status == CheckStatus.Warning),
                exit_code = exit,
            };
            Console.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            foreach (var c in checks)
                Console.WriteLine($"{c.Status.ToString().ToLowerInvariant(),-7} {c.Name}: {c.Message}");
            Console.WriteLine($"{checks.Count(c => c.Status == CheckStatus.Error)} error(s), {checks.Count(c => c.Status == CheckStatus.Warning)} warning(s)");
        }
        return exit;
    }
}
