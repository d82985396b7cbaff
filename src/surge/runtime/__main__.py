from surge.runtime.container import main

main()
