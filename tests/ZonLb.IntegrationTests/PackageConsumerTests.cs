using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// The NuGet packages are what a .NET developer gets: `dotnet pack` of ZonLb.Engine and ZonLb.Native into a
/// local package source, a small program outside this repository (tests/package-consumer) restored from it into
/// its own packages folder, built, and run in the load balancer's namespace while a client sends HTTP through
/// the VIP. It needs only the packages and libxdp/libbpf on the machine: the XDP object comes in the package.
/// </summary>
public class PackageConsumerTests
{
    [Fact]
    public async Task A_program_built_against_the_packed_packages_forwards_traffic()
    {
        string root = Command.RepoRoot();
        string work = Path.Combine(Path.GetTempPath(), $"zlbt-consumer-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            string feed = Path.Combine(work, "feed");
            foreach (var project in new[] { "src/Native/ZonLb.Native.csproj", "src/Engine/ZonLb.Engine.csproj" })
            {
                var pack = Command.Run("dotnet", new[] { "pack", Path.Combine(root, project), "-c", "Release", "-o", feed, "--nologo" }, TimeSpan.FromMinutes(5));
                Assert.True(pack.ExitCode == 0, pack.Output);
            }
            string app = Path.Combine(work, "app");
            Directory.CreateDirectory(app);
            foreach (var f in new[] { "PackageConsumer.csproj", "Program.cs" })
                File.Copy(Path.Combine(root, "tests", "package-consumer", f), Path.Combine(app, f));
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);
            var build = Command.Run("dotnet", new[] { "build", Path.Combine(app, "PackageConsumer.csproj"), "-c", "Release", "-o", Path.Combine(app, "out"), "--nologo" }, TimeSpan.FromMinutes(5));
            Assert.True(build.ExitCode == 0, build.Output);
            Assert.True(File.Exists(Path.Combine(app, "out", "bpf", "zonlb_xdp.o")), "the XDP object did not come with the package");
            Assert.True(Directory.Exists(Path.Combine(app, "packages", "zonlb.engine")), "ZonLb.Engine was not restored from the local source");

            using var t = Topology.Create();
            using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
            var run = Task.Run(() => Command.Run("ip", new[] { "netns", "exec", t.Lb.Name, "dotnet", Path.Combine(app, "out", "PackageConsumer.dll"), Topology.Vip, Topology.BackendIp }, TimeSpan.FromSeconds(60)));
            string? body = null;
            for (int i = 0; i < 50 && body == null && !run.IsCompleted; i++)
            {
                await Task.Delay(200);
                try
                {
                    body = await Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 2000);
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException or InvalidOperationException)
                {
                    // not attached yet: the kernel of the load balancer namespace answers port 80 with a reset
                }
            }
            var r = await run;
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.StartsWith("hello from backend", body);
            Assert.Contains("consumer: forwarded", r.Stdout);
            Assert.Contains("frames_unaccounted=0", r.Stdout);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Theory]
    [InlineData("ZonLb.Engine", "src/Engine/ZonLb.Engine.csproj")]
    [InlineData("ZonLb.Native", "src/Native/ZonLb.Native.csproj")]
    public void A_package_carries_its_readme_license_repository_and_symbols_with_source_link(string id, string project)
    {
        string root = Command.RepoRoot();
        string feed = Directory.CreateTempSubdirectory("zlbt-pack-").FullName;
        try
        {
            var pack = Command.Run("dotnet", new[] { "pack", Path.Combine(root, project), "-c", "Release", "-o", feed, "--nologo" }, TimeSpan.FromMinutes(5));
            Assert.True(pack.ExitCode == 0, pack.Output);
            using var package = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{id}.0.1.0.nupkg"));
            using var symbols = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{id}.0.1.0.snupkg"));
            string nuspec = new StreamReader(package.GetEntry($"{id}.nuspec")!.Open()).ReadToEnd();
            string readme = new StreamReader(package.GetEntry("PACKAGE.md")!.Open()).ReadToEnd();
            using var pdb = new MemoryStream();
            symbols.GetEntry($"lib/net10.0/{id}.pdb")!.Open().CopyTo(pdb);
            string pdbText = System.Text.Encoding.Latin1.GetString(pdb.ToArray());

            Assert.Contains("<readme>PACKAGE.md</readme>", nuspec);
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            Assert.Matches("<repository type=\"git\" url=\"https://github.com/[^\"]+\"", nuspec);
            Assert.NotNull(package.GetEntry("LICENSE"));
            Assert.Contains("libbpf.so.1", readme); // the native libraries a consumer needs, by name
            Assert.Contains("libxdp.so.1", readme);
            string git = Path.Combine(root, ".git"); // a directory, or in a worktree a file
            if (Directory.Exists(git) || File.Exists(git))
            {
                // SourceLink: the PDB maps the sources to the repository at the commit built
                string commit = Command.Check("git", "-C", root, "rev-parse", "HEAD").Trim();
                Assert.Contains($"commit=\"{commit}\"", nuspec);
                Assert.Contains($"https://raw.githubusercontent.com/", pdbText);
                Assert.Contains(commit, pdbText);
            }
            else
            {
                // a source export (no .git) has no commit to link to, and builds without SourceLink
                Assert.DoesNotContain("raw.githubusercontent.com", pdbText);
            }
        }
        finally
        {
            Directory.Delete(feed, recursive: true);
        }
    }
}
