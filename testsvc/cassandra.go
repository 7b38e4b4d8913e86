package testsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// CassandraVersion is the Apache Cassandra the tests of laneIM's CQL store run on. No
// ScyllaDB package reaches the build machines; Cassandra speaks the same protocol and
// its jars are on Maven Central. 5.0 is the first release that runs on Java 17 (4.x
// needs Java 8 or 11, which Debian 12 does not have).
const CassandraVersion = "5.0.9"

// dependencyPlugin is the maven-dependency-plugin that copies the jars, pinned so that
// a new plugin release cannot change what a test run resolves.
const dependencyPlugin = "3.6.1"

// CassandraCacheEnv names the directory the Cassandra jars are kept in across runs,
// instead of the user cache dir.
const CassandraCacheEnv = "LANEIM_CASSANDRA_CACHE"

const cassandraHint = "Cassandra needs Java 17 and Maven (apt-get install openjdk-17-jre-headless maven)"

// Cassandra is a single Apache Cassandra node on private loopback ports and a
// temporary data dir, run from the jars of cassandra-all on Maven Central.
type Cassandra struct {
	// Port is the CQL native protocol port.
	Port int
	// StartTime is how long the last Start took, until the CQL port accepted
	// connections.
	StartTime time.Duration

	dir  string
	java string
	lib  string

	mu   sync.Mutex
	proc *process
}

var (
	sharedCassandra shared[*Cassandra]
	keyspaces       atomic.Int64
)

// errUnavailable marks a failure to get Cassandra at all (no Java, no Maven, the jars
// cannot be resolved), which skips a test unless services are required.
type errUnavailable struct{ msg string }

func (e *errUnavailable) Error() string { return e.msg }

// CQL returns the hosts ("127.0.0.1:port") of the test binary's shared Cassandra node,
// starting it on first use; Main stops it. Tests share the node and keep apart by
// keyspace: CQLKeyspace gives each its own.
func CQL(tb testing.TB) []string {
	tb.Helper()
	return []string{SharedCassandra(tb).Addr()}
}

// CQLKeyspace returns a keyspace name that no other test of the binary gets. It is not
// created: laneIM's CQL store creates its keyspace when missing.
func CQLKeyspace(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("laneim_test_%d", keyspaces.Add(1))
}

// SharedCassandra returns the test binary's shared node, starting it on first use.
// Main stops it.
func SharedCassandra(tb testing.TB) *Cassandra {
	tb.Helper()
	return sharedCassandra.get(tb, newCassandra, checkCassandraErr)
}

// StartCassandra starts a node of tb's own, which it may Stop and Start; it is removed
// when tb ends. A node costs some 600 MB and several seconds: prefer CQL.
func StartCassandra(tb testing.TB) *Cassandra {
	tb.Helper()
	return own(tb, newCassandra, checkCassandraErr)
}

func checkCassandraErr(tb testing.TB, err error) {
	tb.Helper()
	var unavailable *errUnavailable
	if errors.As(err, &unavailable) {
		Unavailable(tb, "%s", unavailable.msg)
	}
	if err != nil {
		tb.Fatalf("start Cassandra: %v", err)
	}
}

func newCassandra() (*Cassandra, error) {
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lib, err := FetchCassandra(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "laneim-cassandra-")
	if err != nil {
		return nil, err
	}
	c := &Cassandra{dir: dir, java: java, lib: lib}
	if err := c.configure(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// findJava finds a Java that Cassandra 5.0 runs on, 17 or 11: java on PATH, else
// Debian's OpenJDK 17 beside another default.
func findJava() (string, error) {
	java, ok := lookPath("java")
	if !ok {
		return "", &errUnavailable{"java is not installed: " + cassandraHint}
	}
	version := javaVersion(java)
	if version == 17 || version == 11 {
		return java, nil
	}
	if debian, _ := filepath.Glob("/usr/lib/jvm/java-17-openjdk-*/bin/java"); len(debian) > 0 {
		return debian[0], nil
	}
	return "", &errUnavailable{fmt.Sprintf("%s is Java %d, and Cassandra %s runs on Java 17 or 11: %s",
		java, version, CassandraVersion, cassandraHint)}
}

// javaVersion is the feature version of a java program ("17" of "17.0.15"), 0 when it
// cannot tell.
func javaVersion(java string) int {
	out, err := exec.Command(java, "-XshowSettings:properties", "-version").CombinedOutput()
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "java.specification.version = "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// CassandraCacheDir is where FetchCassandra keeps the jars: $LANEIM_CASSANDRA_CACHE,
// else laneim/cassandra-<version> in the user cache dir (~/.cache).
func CassandraCacheDir() string {
	if dir := os.Getenv(CassandraCacheEnv); dir != "" {
		return dir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "laneim", "cassandra-"+CassandraVersion)
}

// FetchCassandra resolves cassandra-all and its dependencies (about 100 jars, 67 MB)
// with Maven into CassandraCacheDir once, and returns the directory of the jars. Test
// binaries run in parallel share the cache: the first takes a file lock and fills it,
// the others wait for the lock and find it filled.
func FetchCassandra(ctx context.Context) (string, error) {
	cache := CassandraCacheDir()
	lib := filepath.Join(cache, "lib")
	complete := filepath.Join(cache, "complete")
	if _, err := os.Stat(complete); err == nil {
		return lib, nil
	}
	mvn, ok := lookPath("mvn")
	if !ok {
		return "", &errUnavailable{"mvn is not installed: " + cassandraHint}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", cache, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(complete); err == nil {
		return lib, nil // filled while this one waited
	}

	work, err := os.MkdirTemp(cache, "resolve-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "pom.xml"), []byte(cassandraPOM), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "dependency:copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory="+filepath.Join(work, "lib"))
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return "", &errUnavailable{fmt.Sprintf("resolving org.apache.cassandra:cassandra-all:%s with Maven failed (%v): %s",
			CassandraVersion, err, strings.TrimSpace(tail))}
	}
	jars, _ := filepath.Glob(filepath.Join(work, "lib", "cassandra-all-*.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("maven copied no cassandra-all jar into %s", work)
	}
	if err := os.RemoveAll(lib); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(work, "lib"), lib); err != nil {
		return "", err
	}
	if err := os.WriteFile(complete, nil, 0o644); err != nil {
		return "", err
	}
	return lib, nil
}

// cassandraPOM is a project with cassandra-all as its one dependency, for Maven to
// resolve.
var cassandraPOM = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>im.laneim.test</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>` + CassandraVersion + `</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>` + dependencyPlugin + `</version>
      </plugin>
    </plugins>
  </build>
</project>
`

// configure picks the ports and writes cassandra.yaml and logback.xml, which the
// cassandra-all jar does not ship.
func (c *Cassandra) configure() error {
	var err error
	if c.Port, err = freePort(); err != nil {
		return err
	}
	storagePort, err := freePort()
	if err != nil {
		return err
	}
	for _, sub := range []string{"data", "commitlog", "hints", "saved_caches", "cdc_raw"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o755); err != nil {
			return err
		}
	}
	yaml := fmt.Sprintf(`cluster_name: laneim-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: %[2]d
native_transport_port: %[3]d
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:%[2]d"
data_file_directories:
  - %[1]s/data
commitlog_directory: %[1]s/commitlog
hints_directory: %[1]s/hints
saved_caches_directory: %[1]s/saved_caches
cdc_raw_directory: %[1]s/cdc_raw
# Tests need speed, not power-loss safety: the commit log is synced every 10 s.
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 8MiB
# Every test creates a keyspace; none needs a snapshot when one is dropped.
auto_snapshot: false
concurrent_compactors: 1
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
key_cache_size: 8MiB
`, c.dir, storagePort, c.Port)
	if err := os.WriteFile(c.configPath(), []byte(yaml), 0o644); err != nil {
		return err
	}
	// Warnings only: the node's INFO lines run to hundreds of KB, kept in memory for
	// the message of a failed start.
	logback := `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level %date{HH:mm:ss.SSS} [%thread] %logger{0}: %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
`
	return os.WriteFile(c.logbackPath(), []byte(logback), 0o644)
}

func (c *Cassandra) configPath() string  { return filepath.Join(c.dir, "cassandra.yaml") }
func (c *Cassandra) logbackPath() string { return filepath.Join(c.dir, "logback.xml") }

// Addr is the node's CQL host:port.
func (c *Cassandra) Addr() string { return addr(c.Port) }

// jvm17Options are the JVM flags of Cassandra's own conf/jvm17-server.options and
// cassandra-env.sh that the node needs on Java 17: the module exports and opens its
// internals reach into, and jamm's agent, which measures memtable sizes.
var jvm17Options = []string{
	"-Djdk.attach.allowAttachSelf=true",
	"--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
	"--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
	"--add-exports", "java.sql/java.sql=ALL-UNNAMED",
	"--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
	"--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
	"--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
	"--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
	"--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens", "java.base/java.io=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.util=ALL-UNNAMED",
	"-Dio.netty.tryReflectionSetAccessible=true",
	"-Dio.netty.allocator.useCacheForAllThreads=true",
	"-Dio.netty.allocator.maxOrder=11",
}

// command is the node's command line. As root, Cassandra mlockall()s its whole heap,
// which root's CAP_IPC_LOCK lets it do past RLIMIT_MEMLOCK: a test node would pin
// 600 MB of the machine's memory. setpriv (util-linux) starts java without that one
// capability, so the lock fails with ENOMEM (the node logs it and goes on) and the
// memory stays pageable.
func (c *Cassandra) command() (string, []string, error) {
	args := []string{
		"-Xms512m", "-Xmx512m", "-Xss256k",
		"-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
		"-XX:+UseThreadPriorities", "-XX:+PerfDisableSharedMem",
		"-Djava.net.preferIPv4Stack=true",
		"-javaagent:" + filepath.Join(c.lib, "jamm-0.4.0.jar"),
	}
	args = append(args, jvm17Options...)
	args = append(args,
		"-Dcassandra.config=file://"+c.configPath(),
		"-Dlogback.configurationFile=file://"+c.logbackPath(),
		"-Dcassandra.storagedir="+c.dir,
		"-Dcassandra-foreground=yes",
		// One node has no peers to gossip with: do not wait for gossip to settle.
		"-Dcassandra.skip_wait_for_gossip_to_settle=0",
		"-cp", filepath.Join(c.lib, "*"),
		"org.apache.cassandra.service.CassandraDaemon",
	)
	if os.Geteuid() != 0 {
		return c.java, args, nil
	}
	if setpriv, ok := lookPath("setpriv"); ok {
		return setpriv, append([]string{"--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--", c.java}, args...), nil
	}
	if capsh, ok := lookPath("capsh"); ok {
		quoted := make([]string, 0, len(args)+1)
		for _, a := range append([]string{c.java}, args...) {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		return capsh, []string{"--drop=cap_ipc_lock", "--", "-c", "exec " + strings.Join(quoted, " ")}, nil
	}
	return "", nil, &errUnavailable{"as root Cassandra would lock its whole heap in memory, and neither setpriv (util-linux) " +
		"nor capsh (libcap2-bin) is installed to drop CAP_IPC_LOCK"}
}

// Start starts the node (again) on its ports and data dir and waits until the CQL
// port accepts connections, the last step of Cassandra's startup.
func (c *Cassandra) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.done() {
		return nil
	}
	path, args, err := c.command()
	if err != nil {
		return err
	}
	start := time.Now()
	p, err := startProcess(path, args...)
	if err != nil {
		return err
	}
	if err := p.waitTCP(c.Addr(), 3*time.Minute); err != nil {
		p.stop(10 * time.Second)
		return fmt.Errorf("cassandra: %w", err)
	}
	c.StartTime = time.Since(start)
	c.proc = p
	return nil
}

// Stop stops the node (its data stays for Start).
func (c *Cassandra) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(30 * time.Second)
		c.proc = nil
	}
}

func (c *Cassandra) close() {
	c.Stop()
	os.RemoveAll(c.dir)
}

// String describes the node for test logs.
func (c *Cassandra) String() string {
	return "Cassandra " + CassandraVersion + " at " + c.Addr() + " (started in " +
		strconv.FormatFloat(c.StartTime.Seconds(), 'f', 1, 64) + "s)"
}

// RunCassandra starts a node outside a test (testsvc/cmd/cassandra); Close stops it
// and removes its data.
func RunCassandra() (*Cassandra, error) { return newCassandra() }

// Close stops the node and removes its data dir.
func (c *Cassandra) Close() { c.close() }
